//! The guide's structure: the index maps every item of the course notes'
//! inventory to the section that teaches it, every link leads somewhere,
//! and every piece of Rust the guide points to exists.

use std::collections::BTreeMap;
use std::path::Path;

use super::guide::{PAGES, root};
use super::markdown::{anchor, headings, links, section};

/// The inventory's items: a letter per note, and how many items it has.
const NOTES: [(char, usize); 5] = [('A', 33), ('B', 17), ('C', 21), ('D', 25), ('E', 16)];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of the index's table: item id → link target.
fn index_rows() -> BTreeMap<String, String> {
    let index = read(&root().join("docs/course/README.md"));
    let mut rows = BTreeMap::new();
    for line in index.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(id) = cells.get(1).filter(|c| is_item(c)) else { continue };
        let found = links(line);
        assert_eq!(found.len(), 1, "the row of {id} should link to one section: {line}");
        assert!(!line.to_lowercase().contains("not covered"), "{id} is left not covered: {line}");
        let previous = rows.insert((*id).to_owned(), found[0].target.clone());
        assert!(previous.is_none(), "{id} has two rows in the index");
    }
    rows
}

fn is_item(cell: &str) -> bool {
    let mut chars = cell.chars();
    matches!(chars.next(), Some('A'..='E'))
        && !cell[1..].is_empty()
        && cell[1..].chars().all(|c| c.is_ascii_digit())
}

#[test]
fn the_index_maps_every_item_to_a_section_that_names_it() {
    let rows = index_rows();
    let expected: Vec<String> =
        NOTES.iter().flat_map(|&(note, count)| (1..=count).map(move |n| format!("{note}{n}"))).collect();
    let mut listed: Vec<String> = rows.keys().cloned().collect();
    let mut wanted = expected.clone();
    listed.sort();
    wanted.sort();
    assert_eq!(listed, wanted, "the index must list exactly the 112 items of the inventory");
    for (id, target) in &rows {
        let (file, fragment) =
            target.split_once('#').unwrap_or_else(|| panic!("{id}: link to a section: {target}"));
        let page = read(&root().join("docs/course").join(file));
        let text =
            section(&page, fragment).unwrap_or_else(|| panic!("{id}: no section #{fragment} in {file}"));
        let heading = text.lines().next().unwrap_or_default();
        let named = heading.split(|c: char| !c.is_ascii_alphanumeric()).any(|word| word == id);
        assert!(named, "{id} links to {target}, whose heading does not name it: {heading}");
    }
}

#[test]
fn every_item_has_one_home_section_in_the_pages_of_its_note() {
    // Part N of the guide is the N-th note: its items' headings are there.
    let parts = [
        ('A', "1-sockets-threads-and-processes.md"),
        ('B', "2-tcp-ip-and-threads.md"),
        ('C', "3-client-server.md"),
        ('D', "4-processes-threads-and-ports.md"),
        ('E', "5-chapter-4-exercises.md"),
    ];
    for (note, file) in parts {
        let page = read(&root().join("docs/course").join(file));
        for heading in headings(&page) {
            for word in heading.text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| is_item(w)) {
                assert!(
                    word.starts_with(note),
                    "{file}: heading '{}' names {word}, an item of another note",
                    heading.text
                );
            }
        }
    }
}

#[test]
fn every_link_of_the_guide_leads_somewhere() {
    for page_path in PAGES {
        let page_file = root().join(page_path);
        let dir = page_file.parent().unwrap().to_path_buf();
        for link in links(&read(&page_file)) {
            if link.target.starts_with("http") {
                continue;
            }
            let (file, fragment) = link.target.split_once('#').unwrap_or((&link.target, ""));
            let target = if file.is_empty() { page_file.clone() } else { dir.join(file) };
            assert!(target.exists(), "{page_path}:{}: {} does not exist", link.line, link.target);
            if !fragment.is_empty() {
                let text = read(&target);
                assert!(
                    headings(&text).iter().any(|h| anchor(&h.text) == fragment),
                    "{page_path}:{}: no heading #{fragment} in {file}",
                    link.line
                );
            }
            check_rust_reference(page_path, link.line, &link.text, &target);
        }
    }
}

/// A link to Rust source whose text names an item (`net::tcp_listener`,
/// `EchoClient::receive`) must point to a file that defines it.
fn check_rust_reference(page: &str, line: usize, text: &str, target: &Path) {
    if target.extension().is_none_or(|e| e != "rs") {
        return;
    }
    let name = text.trim_matches('`').rsplit("::").next().unwrap_or_default();
    let name = name.trim_end_matches("()");
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return;
    }
    let source = read(target);
    let defined =
        ["fn ", "struct ", "enum ", "trait ", "const ", "mod ", "type ", "static "].iter().any(|kind| {
            let wanted = format!("{kind}{name}");
            source.match_indices(&wanted).any(|(at, _)| {
                let next = source[at + wanted.len()..].chars().next().unwrap_or(' ');
                !(next.is_alphanumeric() || next == '_')
            })
        });
    assert!(defined, "{page}:{line}: {} defines no `{name}`", target.display());
}
