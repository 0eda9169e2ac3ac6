//! Expectation formulas: `500`, `marker_hits`, `4 * iterations + 7`.
//!
//! A case states its expected count as integer arithmetic over the variables
//! its workload defines (see [`crate::workload::Workload::variable`]), so the
//! number a case expects is derived from the workload rather than copied.
//! Grammar: `expr = term (("+" | "-") term)*`, `term = atom ("*" atom)*`,
//! `atom = integer | name | "(" expr ")"`. Integers may be written in hex (`0x1f4`)
//! and with `_` separators. A formula is at most [`MAX_LENGTH`] characters
//! and nests at most [`MAX_NESTING`] parentheses deep, so parsing, evaluating
//! and dropping one never runs deep enough to exhaust the stack.

use std::fmt;

/// The longest formula, in characters.
pub const MAX_LENGTH: usize = 512;

/// The deepest nesting of parentheses.
pub const MAX_NESTING: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Formula {
    Number(u64),
    Variable(String),
    Add(Box<Formula>, Box<Formula>),
    Sub(Box<Formula>, Box<Formula>),
    Mul(Box<Formula>, Box<Formula>),
}

/// Why a formula could not be parsed or evaluated. `column` is 1-based within
/// the formula's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormulaError {
    pub column: usize,
    pub message: String,
}

impl Formula {
    pub fn parse(text: &str) -> Result<Formula, FormulaError> {
        let length = text.chars().count();
        if length > MAX_LENGTH {
            return Err(FormulaError {
                column: 1,
                message: format!(
                    "this formula is {length} characters long; a formula is at most {MAX_LENGTH}: \
                     write the count it stands for"
                ),
            });
        }
        let mut parser = Parser { text, pos: 0, depth: 0 };
        let formula = parser.expr()?;
        parser.skip_space();
        if parser.pos < text.len() {
            return Err(parser.error(format!("unexpected `{}`", parser.rest_token())));
        }
        Ok(formula)
    }

    /// Every variable the formula mentions, in order of appearance.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_variables(&mut out);
        out
    }

    fn collect_variables<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Formula::Number(_) => {}
            Formula::Variable(name) => out.push(name),
            Formula::Add(a, b) | Formula::Sub(a, b) | Formula::Mul(a, b) => {
                a.collect_variables(out);
                b.collect_variables(out);
            }
        }
    }

    /// Evaluates with `lookup` for variables. Fails on an unknown variable, on
    /// overflow, and on a negative result: counts are never negative.
    pub fn evaluate(&self, lookup: &dyn Fn(&str) -> Option<u64>) -> Result<u64, String> {
        match self {
            Formula::Number(n) => Ok(*n),
            Formula::Variable(name) => lookup(name).ok_or_else(|| format!("unknown variable `{name}`")),
            Formula::Add(a, b) => a
                .evaluate(lookup)?
                .checked_add(b.evaluate(lookup)?)
                .ok_or_else(|| format!("`{self}` overflows 64 bits")),
            Formula::Sub(a, b) => a
                .evaluate(lookup)?
                .checked_sub(b.evaluate(lookup)?)
                .ok_or_else(|| format!("`{self}` is negative")),
            Formula::Mul(a, b) => a
                .evaluate(lookup)?
                .checked_mul(b.evaluate(lookup)?)
                .ok_or_else(|| format!("`{self}` overflows 64 bits")),
        }
    }
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Formula::Number(n) => write!(f, "{n}"),
            Formula::Variable(name) => f.write_str(name),
            Formula::Add(a, b) => write!(f, "{a} + {b}"),
            Formula::Sub(a, b) => match **b {
                Formula::Add(..) | Formula::Sub(..) => write!(f, "{a} - ({b})"),
                _ => write!(f, "{a} - {b}"),
            },
            Formula::Mul(a, b) => {
                let wrap = |x: &Formula| matches!(x, Formula::Add(..) | Formula::Sub(..));
                match (wrap(a), wrap(b)) {
                    (false, false) => write!(f, "{a} * {b}"),
                    (true, false) => write!(f, "({a}) * {b}"),
                    (false, true) => write!(f, "{a} * ({b})"),
                    (true, true) => write!(f, "({a}) * ({b})"),
                }
            }
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// Parentheses open at `pos`.
    depth: usize,
}

impl Parser<'_> {
    fn expr(&mut self) -> Result<Formula, FormulaError> {
        let mut left = self.term()?;
        loop {
            self.skip_space();
            if self.eat('+') {
                left = Formula::Add(Box::new(left), Box::new(self.term()?));
            } else if self.eat('-') {
                left = Formula::Sub(Box::new(left), Box::new(self.term()?));
            } else {
                return Ok(left);
            }
        }
    }

    fn term(&mut self) -> Result<Formula, FormulaError> {
        let mut left = self.atom()?;
        loop {
            self.skip_space();
            if self.eat('*') {
                left = Formula::Mul(Box::new(left), Box::new(self.atom()?));
            } else {
                return Ok(left);
            }
        }
    }

    fn atom(&mut self) -> Result<Formula, FormulaError> {
        self.skip_space();
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.error("expected a number, a variable or `(`, found the end".into()));
        };
        if self.peek() == Some('(') && self.depth == MAX_NESTING {
            return Err(self.error(format!("parentheses nest more than {MAX_NESTING} deep here")));
        }
        if self.eat('(') {
            self.depth += 1;
            let inner = self.expr()?;
            self.depth -= 1;
            self.skip_space();
            if !self.eat(')') {
                return Err(self.error("expected `)`".into()));
            }
            return Ok(inner);
        }
        if c.is_ascii_digit() {
            let token = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
            let digits = token.replace('_', "");
            let value = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => digits.parse(),
            };
            return value.map(Formula::Number).map_err(|_| FormulaError {
                column: start + 1,
                message: format!("`{token}` is not a 64-bit unsigned integer"),
            });
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let name = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
            return Ok(Formula::Variable(name.to_owned()));
        }
        Err(self.error(format!("expected a number, a variable or `(`, found `{c}`")))
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        self.take_while(char::is_whitespace);
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|&c| keep(c)) {
            self.pos += c.len_utf8();
        }
        &self.text[start..self.pos]
    }

    fn rest_token(&self) -> &str {
        let rest = &self.text[self.pos..];
        rest.split_whitespace().next().unwrap_or(rest)
    }

    fn error(&self, message: String) -> FormulaError {
        FormulaError {
            column: self.text[..self.pos].chars().count() + 1,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str) -> Result<u64, String> {
        let f = Formula::parse(text).map_err(|e| format!("{}: {}", e.column, e.message))?;
        f.evaluate(&|name| match name {
            "iterations" => Some(1000),
            "branches" => Some(500),
            _ => None,
        })
    }

    #[test]
    fn arithmetic_follows_precedence() {
        assert_eq!(eval("500"), Ok(500));
        assert_eq!(eval("0x1f4"), Ok(500));
        assert_eq!(eval("1_000_000"), Ok(1_000_000));
        assert_eq!(eval("4 * iterations + 7"), Ok(4007));
        assert_eq!(eval("branches - 2"), Ok(498));
        assert_eq!(eval("2 * (branches - 2)"), Ok(996));
        assert_eq!(eval("10 - 2 - 3"), Ok(5));
    }

    #[test]
    fn errors_say_where_and_what() {
        assert_eq!(
            eval("iterations +"),
            Err("13: expected a number, a variable or `(`, found the end".into())
        );
        assert_eq!(eval("(iterations"), Err("12: expected `)`".into()));
        assert_eq!(eval("iterations 2"), Err("12: unexpected `2`".into()));
        assert_eq!(eval("pages"), Err("unknown variable `pages`".into()));
        assert_eq!(eval("2 - branches"), Err("`2 - branches` is negative".into()));
        assert_eq!(
            eval("0xffffffffffffffff * 2"),
            Err("`18446744073709551615 * 2` overflows 64 bits".into())
        );
        assert_eq!(
            eval("99999999999999999999"),
            Err("1: `99999999999999999999` is not a 64-bit unsigned integer".into())
        );
        assert_eq!(
            eval("%"),
            Err("1: expected a number, a variable or `(`, found `%`".into())
        );
    }

    #[test]
    fn deep_and_long_formulas_are_errors_not_stack_overflows() {
        let deep = format!("{}marker_hits{}", "(".repeat(15_000), ")".repeat(15_000));
        let err = Formula::parse(&deep).unwrap_err();
        assert_eq!(err.column, 1);
        assert!(err.message.contains("30011 characters long"), "{}", err.message);
        let nested = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        let err = Formula::parse(&nested).unwrap_err();
        assert_eq!(
            (err.column, err.message.as_str()),
            (33, "parentheses nest more than 32 deep here")
        );
        let fine = format!("{}1{}", "(".repeat(32), ")".repeat(32));
        assert_eq!(Formula::parse(&fine), Ok(Formula::Number(1)));
        let long_sum = vec!["1"; 256].join("+");
        assert_eq!(Formula::parse(&long_sum).unwrap().evaluate(&|_| None), Ok(256));
    }

    #[test]
    fn display_round_trips() {
        for text in ["4 * iterations + 7", "branches - (2 + 1)", "(iterations + 1) * 2"] {
            let f = Formula::parse(text).unwrap();
            assert_eq!(Formula::parse(&f.to_string()).unwrap(), f, "{text}");
        }
    }
}
