//! Arithmetic expressions and byte loads: `tcp[13] & 2`, `ip[6:2] & 0x1fff`,
//! `len - 14`. Operators group the way libpcap's yacc grammar groups them:
//! `|` below `&` below `<< >>` below `+ -` below `* /`, all from the left,
//! unary `-` above all; `^` and `%` have no precedence there, so yacc shifts
//! on them and they group from the right over whatever they meet
//! (`len - 1 ^ 2` is `len - (1 ^ 2)`, `len % 2 * 3` is `len % (2 * 3)`).

use super::super::names::{constant, number};
use super::super::{ArithOp, Expr, Layer, RelOp};
use super::{FilterError, MAX_NESTING, Parser, nesting_problem};

/// An operator waiting on the stack for its right operand.
#[derive(Clone, Copy)]
enum Pending {
    Binary(ArithOp),
    Neg,
}

impl Pending {
    /// Its precedence in libpcap's grammar (higher binds tighter); `None`
    /// for the operators the grammar gives none.
    fn precedence(self) -> Option<u8> {
        match self {
            Pending::Binary(op) => precedence(op),
            Pending::Neg => Some(6),
        }
    }
}

fn precedence(op: ArithOp) -> Option<u8> {
    match op {
        ArithOp::Or => Some(1),
        ArithOp::And => Some(2),
        ArithOp::Shl | ArithOp::Shr => Some(3),
        ArithOp::Add | ArithOp::Sub => Some(4),
        ArithOp::Mul | ArithOp::Div => Some(5),
        ArithOp::Xor | ArithOp::Mod => None,
    }
}

fn binary_operator(text: &str) -> Option<ArithOp> {
    Some(match text {
        "+" => ArithOp::Add,
        "-" => ArithOp::Sub,
        "*" => ArithOp::Mul,
        "/" => ArithOp::Div,
        "%" => ArithOp::Mod,
        "&" => ArithOp::And,
        "|" => ArithOp::Or,
        "^" => ArithOp::Xor,
        "<<" => ArithOp::Shl,
        ">>" => ArithOp::Shr,
        _ => return None,
    })
}

/// The protocol words that take a byte offset: `tcp[13]`.
pub(super) fn load_layer(word: &str) -> Option<Layer> {
    Some(match word.to_ascii_lowercase().as_str() {
        "ether" | "link" => Layer::Link,
        "ip" => Layer::Ip,
        "ip6" => Layer::Ip6,
        "arp" => Layer::Arp,
        "rarp" => Layer::Rarp,
        "tcp" => Layer::Tcp,
        "udp" => Layer::Udp,
        "sctp" => Layer::Sctp,
        "icmp" => Layer::Icmp,
        "icmp6" => Layer::Icmp6,
        "igmp" => Layer::Igmp,
        _ => return None,
    })
}

impl Parser<'_, '_> {
    /// Whether the next tokens start an arithmetic expression (and so, at
    /// the start of a primitive, a comparison).
    pub(super) fn starts_arith(&self) -> bool {
        let Some(token) = self.peek() else { return false };
        let word = token.text.to_ascii_lowercase();
        token.text == "-"
            || word == "len"
            || word == "length"
            || constant(&word).is_some()
            || number(&word).is_some()
            || (load_layer(&word).is_some() && self.peek_at(1).is_some_and(|t| t.text == "["))
    }

    /// A comparison operator next, if there is one.
    pub(super) fn relop(&self) -> Option<RelOp> {
        Some(match self.peek()?.text {
            ">" => RelOp::Gt,
            "<" => RelOp::Lt,
            ">=" => RelOp::Ge,
            "<=" => RelOp::Le,
            "=" | "==" => RelOp::Eq,
            "!=" => RelOp::Ne,
            _ => return None,
        })
    }

    pub(super) fn expect_expression(&self) -> Result<(), FilterError> {
        let ok = self.peek().is_some_and(|t| t.text == "(" || t.text == "-") || self.starts_arith();
        if ok {
            Ok(())
        } else {
            Err(self.error(self.peek(), "a number, 'len' or a byte offset such as tcp[13]"))
        }
    }

    /// A whole arithmetic expression.
    pub(super) fn arith(&mut self) -> Result<Expr, FilterError> {
        self.operators(Vec::new(), Vec::new())
    }

    /// An arithmetic expression whose first operand, `first`, was read.
    pub(super) fn arith_from(&mut self, first: Expr) -> Result<Expr, FilterError> {
        self.operators(vec![first], Vec::new())
    }

    /// Operator precedence parsing, deciding shift or reduce as yacc does
    /// for libpcap's grammar: reduce only when both operators have a
    /// precedence and the one on the stack binds at least as tightly.
    fn operators(&mut self, mut operands: Vec<Expr>, mut stack: Vec<Pending>) -> Result<Expr, FilterError> {
        loop {
            if operands.len() == stack.iter().filter(|p| matches!(p, Pending::Binary(_))).count() {
                // An operand is due.
                while self.peek_is(&["-"]) {
                    let minus = self.bump();
                    self.join(minus)?;
                    stack.push(Pending::Neg);
                }
                self.expect_expression()?;
                operands.push(self.operand()?);
            }
            let Some(op) = self.peek().and_then(|t| binary_operator(t.text)) else { break };
            while let Some(&top) = stack.last() {
                let reduce = match (top.precedence(), precedence(op)) {
                    (Some(on_stack), Some(incoming)) => on_stack >= incoming,
                    _ => false,
                };
                if !reduce {
                    break;
                }
                self.reduce(&mut operands, &mut stack)?;
            }
            let token = self.bump();
            self.join(token)?;
            stack.push(Pending::Binary(op));
        }
        while !stack.is_empty() {
            self.reduce(&mut operands, &mut stack)?;
        }
        let expr = operands.pop().ok_or_else(|| self.error(self.peek(), "an expression"))?;
        // Operators without a precedence ('%', '^') group to the right
        // without parentheses, and print with them: count those too.
        if self.nesting + expr.display_depth() > MAX_NESTING {
            return Err(self.fail(self.peek(), &nesting_problem()));
        }
        Ok(expr)
    }

    /// A number, a named constant, `len`, `PROTO[INDEX:SIZE]` or `(EXPR)`.
    fn operand(&mut self) -> Result<Expr, FilterError> {
        let Some(token) = self.bump() else { return Err(self.error(None, "an expression")) };
        let word = token.text.to_ascii_lowercase();
        if token.text == "(" {
            self.nest(Some(token))?;
            let inner = self.arith()?;
            if !self.peek_is(&[")"]) {
                return Err(self.error(self.peek(), "')'"));
            }
            self.bump();
            self.nesting -= 1;
            return Ok(inner);
        }
        if word == "len" || word == "length" {
            return Ok(Expr::Len);
        }
        if let Some(value) = number(&word).or_else(|| constant(&word)) {
            return Ok(Expr::Num(value));
        }
        let Some(layer) = load_layer(&word).filter(|_| self.peek_is(&["["])) else {
            return Err(self.error(Some(token), "a number, 'len' or a byte offset such as tcp[13]"));
        };
        let open = self.bump();
        self.nest(open)?;
        self.expect_expression()?;
        let index = self.arith()?;
        let mut size = 1;
        if self.peek_is(&[":"]) {
            self.bump();
            let size_token = self.bump();
            size = match size_token.map(|t| t.text) {
                Some("1") => 1,
                Some("2") => 2,
                Some("4") => 4,
                _ => return Err(self.fail(size_token, "data size must be 1, 2, or 4")),
            };
        }
        if !self.peek_is(&["]"]) {
            return Err(self.error(self.peek(), "']' (or ':' and a size of 1, 2 or 4)"));
        }
        self.bump();
        self.nesting -= 1;
        Ok(Expr::Load { layer, index: Box::new(index), size })
    }
}

impl Parser<'_, '_> {
    /// Applies the operator on top of the stack to its operands. As
    /// libpcap, refuses a literal zero divisor and a literal shift past 31.
    fn reduce(&self, operands: &mut Vec<Expr>, stack: &mut Vec<Pending>) -> Result<(), FilterError> {
        match stack.pop() {
            Some(Pending::Neg) => {
                if let Some(a) = operands.pop() {
                    operands.push(Expr::Neg(Box::new(a)));
                }
            }
            Some(Pending::Binary(op)) => {
                if let (Some(b), Some(a)) = (operands.pop(), operands.pop()) {
                    match (op, &b) {
                        (ArithOp::Div | ArithOp::Mod, Expr::Num(0)) => {
                            return Err(self.fail(self.peek(), "division by zero"));
                        }
                        (ArithOp::Shl | ArithOp::Shr, Expr::Num(n)) if *n > 31 => {
                            return Err(self.fail(self.peek(), "a shift by more than 31 bits"));
                        }
                        _ => {}
                    }
                    operands.push(Expr::Binary(op, Box::new(a), Box::new(b)));
                }
            }
            None => {}
        }
        Ok(())
    }
}
