//! The filter language's parser: recursive descent over [`super::lex`]'s
//! tokens. As in libpcap, `and` and `or` bind equally and group from the
//! left (`icmp or udp and port 9` is `(icmp or udp) and port 9`); `not`
//! binds tightest. A parenthesis may hold a filter or an arithmetic
//! expression (`(tcp[13] & 2) != 0`): what it held decides how the text
//! after it is read.

mod arith;
mod primitive;
mod values;

use super::lex::{Token, tokenize};
use super::{Expr, Filter, Names};
use primitive::Template;

/// A filter that does not parse, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad filter at {}: {problem}", at(.word, *.position))]
pub struct FilterError {
    /// The offending word; `None` at the end of the filter.
    pub word: Option<String>,
    /// Its byte offset in the filter text.
    pub position: usize,
    /// What is wrong: usually "expected" what would have been right there.
    pub problem: String,
}

fn at(word: &Option<String>, position: usize) -> String {
    match word {
        Some(word) => format!("'{word}' (character {})", position + 1),
        None => "the end".to_owned(),
    }
}

/// The deepest nesting of parentheses, brackets and `not` a filter may
/// have. Every level is a level of recursion here and in compiling; a
/// crafted filter 100,000 levels deep would overflow the stack.
pub const MAX_NESTING: usize = 100;

/// What a filter nested too deep is told.
fn nesting_problem() -> String {
    format!("a filter may nest parentheses, brackets and 'not' at most {MAX_NESTING} deep")
}

/// The most primitives and arithmetic operations one filter may join.
/// Joined terms form a tree as deep as the chain is long; real filters
/// have a handful.
pub const MAX_TERMS: usize = 1000;

/// What a piece of the text turned out to be.
enum Parsed {
    /// A filter.
    Bool(Filter),
    /// An arithmetic expression not yet compared with anything: only right
    /// inside parentheses, whose closing one the comparison follows.
    Arith(Expr),
}

struct Parser<'a, 'n> {
    tokens: Vec<Token<'a>>,
    next: usize,
    /// The qualifiers a bare value repeats: `port 80 or 443`.
    last: Option<Template>,
    /// Parentheses, brackets and `not`s open around the current token.
    nesting: usize,
    /// Joins and arithmetic operations so far, in the whole filter.
    joins: usize,
    names: &'n dyn Names,
}

/// Parses a whole filter expression, looking names up through `names`.
pub(super) fn parse(text: &str, names: &dyn Names) -> Result<Filter, FilterError> {
    let mut parser = Parser { tokens: tokenize(text), next: 0, last: None, nesting: 0, joins: 0, names };
    let parsed = parser.binary()?;
    let filter = parser.filter(parsed)?;
    match parser.peek() {
        None => Ok(filter),
        Some(token) if token.text == ")" => Err(parser.error(Some(token), "'(' before it")),
        Some(token) => Err(parser.error(Some(token), "'and', 'or' or the end of the filter")),
    }
}

impl<'a> Parser<'a, '_> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.next).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<Token<'a>> {
        self.tokens.get(self.next + ahead).copied()
    }

    fn peek_is(&self, words: &[&str]) -> bool {
        self.peek().is_some_and(|t| words.iter().any(|w| t.text.eq_ignore_ascii_case(w)))
    }

    fn bump(&mut self) -> Option<Token<'a>> {
        let token = self.peek();
        self.next += usize::from(token.is_some());
        token
    }

    fn error(&self, token: Option<Token<'_>>, expected: &str) -> FilterError {
        self.fail(token, &format!("expected {expected}"))
    }

    fn fail(&self, token: Option<Token<'_>>, problem: &str) -> FilterError {
        FilterError {
            word: token.map(|t| t.text.to_owned()),
            position: token
                .map_or_else(|| self.tokens.last().map_or(0, |t| t.position + t.text.len()), |t| t.position),
            problem: problem.to_owned(),
        }
    }

    /// A filter from what was parsed: an expression alone is not one.
    fn filter(&self, parsed: Parsed) -> Result<Filter, FilterError> {
        match parsed {
            Parsed::Bool(filter) => Ok(filter),
            Parsed::Arith(_) => Err(self.error(
                self.peek(),
                "a comparison after the expression (>, <, >=, <=, =, != and another expression)",
            )),
        }
    }

    /// Counts one more join or operation against [`MAX_TERMS`].
    fn join(&mut self, operator: Option<Token<'_>>) -> Result<(), FilterError> {
        self.joins += 1;
        if self.joins >= MAX_TERMS {
            return Err(self.fail(operator, &format!("a filter may join at most {MAX_TERMS} terms")));
        }
        Ok(())
    }

    /// Enters one level of nesting at `token`, within [`MAX_NESTING`].
    fn nest(&mut self, token: Option<Token<'_>>) -> Result<(), FilterError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.fail(token, &nesting_problem()));
        }
        Ok(())
    }

    /// Primitives joined by `and` and `or`, grouped from the left.
    fn binary(&mut self) -> Result<Parsed, FilterError> {
        let mut left = self.unary()?;
        loop {
            let and = self.peek_is(&["and", "&&"]);
            if !and && !self.peek_is(&["or", "||"]) {
                return Ok(left);
            }
            let filter = self.filter(left)?;
            let operator = self.bump();
            self.expect_operand(operator)?;
            self.join(operator)?;
            let unary = self.unary()?;
            let right = Box::new(self.filter(unary)?);
            left = Parsed::Bool(if and {
                Filter::And(Box::new(filter), right)
            } else {
                Filter::Or(Box::new(filter), right)
            });
        }
    }

    /// After `and`, `or` or `not`, something to apply it to.
    fn expect_operand(&self, operator: Option<Token<'_>>) -> Result<(), FilterError> {
        if self.peek().is_none() || self.peek_is(&["and", "&&", "or", "||", ")"]) {
            let word = operator.map_or("", |t| t.text);
            return Err(self.error(self.peek(), &format!("a filter after '{word}'")));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Parsed, FilterError> {
        if self.peek_is(&["not", "!"]) {
            let operator = self.bump();
            self.nest(operator)?;
            self.expect_operand(operator)?;
            let operand = self.unary()?;
            let filter = self.filter(operand)?;
            self.nesting -= 1;
            return Ok(Parsed::Bool(Filter::Not(Box::new(filter))));
        }
        if self.peek_is(&["("]) {
            let open = self.bump();
            self.nest(open)?;
            let inner = self.binary()?;
            if !self.peek_is(&[")"]) {
                return Err(self.error(self.peek(), "')'"));
            }
            self.bump();
            self.nesting -= 1;
            return match inner {
                Parsed::Bool(filter) => Ok(Parsed::Bool(filter)),
                // `(tcp[13] & 2) != 0`: the expression goes on after the parenthesis.
                Parsed::Arith(expr) => {
                    let expr = self.arith_from(expr)?;
                    self.compare(expr)
                }
            };
        }
        self.primitive()
    }

    /// `expr` compared with what follows, when a comparison follows.
    fn compare(&mut self, left: Expr) -> Result<Parsed, FilterError> {
        match self.relop() {
            Some(op) => {
                self.bump();
                self.expect_expression()?;
                let right = self.arith()?;
                Ok(Parsed::Bool(Filter::Compare(super::Relation { left, op, right })))
            }
            None => Ok(Parsed::Arith(left)),
        }
    }
}
