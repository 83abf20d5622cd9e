//! Reading the guide's Markdown: fenced `sh` blocks and the commands in them,
//! headings and their anchors, and links.

/// A fenced code block whose info string starts with `sh`.
#[derive(Debug, PartialEq, Eq)]
pub struct ShellBlock {
    /// The line of the opening fence (from 1).
    pub line: usize,
    /// The HTML comment right before the fence, such as `not run: why`.
    pub marker: Option<String>,
    /// The commands, with `\` continuations joined.
    pub commands: Vec<GuideCommand>,
}

/// One command of a shell block.
#[derive(Debug, PartialEq, Eq)]
pub struct GuideCommand {
    /// The line it starts on (from 1).
    pub line: usize,
    /// The command as written, trailing comment included.
    pub text: String,
    /// It ends with `&`: a server (or capture) that runs in the background.
    pub background: bool,
    /// The exit code its trailing `# exits N` comment promises (0 without one).
    pub exits: i32,
}

/// The shell blocks of a Markdown page.
pub fn shell_blocks(page: &str) -> Vec<ShellBlock> {
    let mut blocks = Vec::new();
    let mut lines = page.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut marker: Option<String> = None;
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(comment) = trimmed.strip_prefix("<!--").and_then(|c| c.strip_suffix("-->")) {
            marker = Some(comment.trim().to_owned());
            continue;
        }
        let Some(info) = trimmed.strip_prefix("```") else {
            if !trimmed.is_empty() {
                marker = None;
            }
            continue;
        };
        let body: Vec<(usize, &str)> = lines.by_ref().take_while(|(_, l)| l.trim() != "```").collect();
        if info.split_whitespace().next() == Some("sh") {
            blocks.push(ShellBlock { line: number, marker: marker.take(), commands: commands(&body) });
        }
        marker = None;
    }
    blocks
}

fn commands(body: &[(usize, &str)]) -> Vec<GuideCommand> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for &(number, line) in body {
        let (start, mut text) = pending.take().unwrap_or((number, String::new()));
        text.push_str(line.trim());
        if let Some(joined) = text.strip_suffix('\\') {
            pending = Some((start, format!("{} ", joined.trim_end())));
            continue;
        }
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let (command, comment) = split_comment(&text);
        let exits = comment
            .and_then(|c| c.trim().strip_prefix("exits "))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        out.push(GuideCommand { line: start, background: command.ends_with('&'), exits, text });
    }
    out
}

/// The command and its trailing `# comment`, if any. A `#` starts a
/// comment only at the start of a word outside quotes, as in the shell.
pub fn split_comment(text: &str) -> (&str, Option<&str>) {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return (text[..i].trim_end(), Some(&text[i + 1..])),
            _ => {}
        }
        previous = c;
    }
    (text.trim_end(), None)
}

/// The anchor GitHub gives a heading: lower case, spaces to hyphens,
/// punctuation other than `-` and `_` dropped.
pub fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// A heading of a page, outside code blocks.
#[derive(Debug)]
pub struct Heading {
    pub line: usize,
    pub level: usize,
    pub text: String,
}

/// The headings of a page, outside code blocks.
pub fn headings(page: &str) -> Vec<Heading> {
    let mut in_code = false;
    let mut out = Vec::new();
    for (i, line) in page.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if !in_code && level > 0 && line[level..].starts_with(' ') {
            out.push(Heading { line: i + 1, level, text: line[level..].trim().to_owned() });
        }
    }
    out
}

/// The text under the heading whose anchor is `wanted`, up to the next
/// heading of the same or a higher level.
pub fn section<'a>(page: &'a str, wanted: &str) -> Option<&'a str> {
    let all = headings(page);
    let at = all.iter().position(|h| anchor(&h.text) == wanted)?;
    let level = all[at].level;
    let end = all[at + 1..].iter().find(|h| h.level <= level).map(|h| h.line);
    let lines: Vec<&str> = page.lines().collect();
    let start_offset: usize = lines[..all[at].line - 1].iter().map(|l| l.len() + 1).sum();
    let end_offset = end.map_or(page.len(), |e| lines[..e - 1].iter().map(|l| l.len() + 1).sum());
    page.get(start_offset..end_offset)
}

/// A Markdown link `[text](target)` outside code blocks.
#[derive(Debug)]
pub struct Link {
    pub line: usize,
    pub text: String,
    pub target: String,
}

/// The links of a page, outside code blocks and inline code.
pub fn links(page: &str) -> Vec<Link> {
    let mut in_code = false;
    let mut out = Vec::new();
    for (i, line) in page.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            let Some(close) = after.find("](") else { break };
            let text = &after[..close];
            let target_start = &after[close + 2..];
            let Some(end) = target_start.find(')') else { break };
            // `[x]` inside inline code is not a link.
            let before = &line[..line.len() - rest.len() + open];
            if before.matches('`').count() % 2 == 0 {
                out.push(Link { line: i + 1, text: text.to_owned(), target: target_start[..end].to_owned() });
            }
            rest = &target_start[end + 1..];
        }
    }
    out
}

#[test]
fn reads_commands_markers_and_exit_codes() {
    let page = "\
intro
<!-- not run: needs a terminal -->
```sh
socketeer chat join localhost:5555
```

```sh
# a comment line
socketeer echo serve --port 9000 &   # a server
socketeer echo send 127.0.0.2:9000 hi   # exits 1: refused
printf 'a\\nb\\n' | socketeer echo send localhost:7007 \\
    --udp
```
```text
socketeer not a command
```
";
    let blocks = shell_blocks(page);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].marker.as_deref(), Some("not run: needs a terminal"));
    assert_eq!(blocks[1].marker, None);
    let c = &blocks[1].commands;
    assert_eq!(c.len(), 3);
    assert!(c[0].background && c[0].exits == 0 && c[0].line == 9);
    assert!(!c[1].background && c[1].exits == 1);
    assert_eq!(c[2].text, "printf 'a\\nb\\n' | socketeer echo send localhost:7007 --udp");
    assert_eq!(c[2].line, 11);
}

#[test]
fn finds_comments_anchors_sections_and_links() {
    assert_eq!(split_comment("echo 'a # b' # c"), ("echo 'a # b'", Some(" c")));
    assert_eq!(split_comment("curl x#y"), ("curl x#y", None));
    assert_eq!(anchor("A5, A9. `sendto()` and the UDP flow"), "a5-a9-sendto-and-the-udp-flow");
    let page = "# Top\n## One\nfirst [a](x.md#b) `[no](link)`\n### Sub\ndeep\n## Two\nsecond\n";
    assert_eq!(section(page, "one").unwrap(), "## One\nfirst [a](x.md#b) `[no](link)`\n### Sub\ndeep\n");
    assert_eq!(section(page, "two").unwrap(), "## Two\nsecond\n");
    let found = links(page);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].text.as_str(), found[0].target.as_str()), ("a", "x.md#b"));
}
