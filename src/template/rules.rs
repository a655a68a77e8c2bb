//! The rules a game template's variables are checked by: those of
//! Pterodactyl/Pelican eggs, which are Laravel validation rules, written as a
//! pipe string (`required|string|max:20`) or a list (`["required",
//! "integer", "between:1,256"]`). Pure: parsed once, checked per value.
//!
//! Semantics, as Laravel has them for the values eggs get (strings):
//! - `required`: not empty (after trimming whitespace). `present` and
//!   `nullable` always hold (a template variable always exists; an empty
//!   value is what Laravel calls null).
//! - An empty value is checked by `required` only: every other rule holds
//!   for it (Laravel runs only "implicit" rules on an empty string).
//! - `min`, `max`, `between`, `size`, `gt` compare the number when the rules
//!   also say `numeric` or `integer` and the value is numeric, else the
//!   length in characters.
//! - `numeric` is PHP's `is_numeric` (decimal, sign, fraction, exponent;
//!   surrounding whitespace allowed); `integer` is PHP's `FILTER_VALIDATE_INT`
//!   (a sign, no leading zero, within 64 bits); `boolean` accepts exactly `0`,
//!   `1`, `true` and `false` as Laravel's HTML-form values reach it (`"1"`,
//!   `"0"`): `true` and `false` spelled out are NOT booleans to Laravel, and
//!   not here either.
//! - `regex:/pattern/flags` takes PHP's delimiters and the flags `i`, `m`,
//!   `s`, `x` (`u` is implied); a pattern this engine cannot run (look-around,
//!   back-references) is refused when the template is read, naming it.
//! - `in` and `not_in` take comma-separated values, quoted as CSV when a
//!   value holds a comma; `ends_with` likewise.
//! - `int`, which some eggs write though Laravel has no such rule (Laravel
//!   would fail on it), is read as `integer`: [`Rules::notes`] says so.
//!
//! Any other rule is refused by name when the rules are read: a variable is
//! never left unchecked by a rule that was silently ignored.

use std::fmt;

use regex::Regex;

/// One rule, as read.
#[derive(Clone, Debug)]
enum Rule {
    Required,
    Present,
    Nullable,
    String,
    Numeric,
    Integer,
    Boolean,
    AlphaDash,
    AlphaNum,
    Url,
    Min(f64),
    Max(f64),
    Between(f64, f64),
    Size(f64),
    Gt(f64),
    Digits(usize),
    DigitsBetween(usize, usize),
    In(Vec<String>),
    NotIn(Vec<String>),
    EndsWith(Vec<String>),
    Regex(Regex),
}

/// A variable's rules: [`Rules::parse`] reads them, [`Rules::check`] checks a
/// value.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Each rule with the text it was read from (for messages).
    rules: Vec<(Rule, String)>,
    notes: Vec<String>,
}

/// A value that breaks a rule: the rule as written, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub rule: String,
    pub reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "breaks the rule `{}`: {}", self.rule, self.reason)
    }
}

impl Rules {
    /// Reads rules written as an egg's pipe string.
    pub fn parse_str(text: &str) -> Result<Rules, String> {
        Rules::parse_list(&split_pipes(text))
    }

    /// Reads rules written as a list (each entry one rule).
    pub fn parse_list<S: AsRef<str>>(list: &[S]) -> Result<Rules, String> {
        let mut rules = Vec::new();
        let mut notes = Vec::new();
        for text in list.iter().map(|s| s.as_ref().trim()).filter(|s| !s.is_empty()) {
            let (rule, note) = parse_rule(text)?;
            notes.extend(note);
            rules.push((rule, text.to_string()));
        }
        Ok(Rules { rules, notes })
    }

    /// What was read other than written (`int` read as `integer`).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Whether a value is needed (`required`).
    pub fn required(&self) -> bool {
        self.rules.iter().any(|(r, _)| matches!(r, Rule::Required))
    }

    /// The first rule `value` breaks, in the order the rules are written.
    pub fn check(&self, value: &str) -> Result<(), Broken> {
        let empty = value.trim().is_empty();
        let numeric = self.rules.iter().any(|(r, _)| matches!(r, Rule::Numeric | Rule::Integer));
        for (rule, text) in &self.rules {
            let broken = |reason: String| Err(Broken { rule: text.clone(), reason });
            if empty {
                if matches!(rule, Rule::Required) {
                    return broken("a value is required".to_string());
                }
                continue;
            }
            // A number when the rules say so and the value is one, else a length.
            let size = || match (numeric, php_numeric(value)) {
                (true, Some(n)) => (n, "the value"),
                _ => (value.chars().count() as f64, "the length"),
            };
            let ok = match rule {
                Rule::Required | Rule::Present | Rule::Nullable | Rule::String => true,
                Rule::Numeric => php_numeric(value).is_some(),
                Rule::Integer => php_integer(value),
                Rule::Boolean => matches!(value, "0" | "1"),
                Rule::AlphaDash => value.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-'),
                Rule::AlphaNum => value.chars().all(char::is_alphanumeric),
                Rule::Url => is_url(value),
                Rule::Min(n) => size().0 >= *n,
                Rule::Max(n) => size().0 <= *n,
                Rule::Between(a, b) => (*a..=*b).contains(&size().0),
                Rule::Size(n) => size().0 == *n,
                Rule::Gt(n) => size().0 > *n,
                Rule::Digits(n) => value.chars().all(|c| c.is_ascii_digit()) && value.len() == *n,
                Rule::DigitsBetween(a, b) => {
                    value.chars().all(|c| c.is_ascii_digit()) && (*a..=*b).contains(&value.len())
                }
                Rule::In(values) => values.iter().any(|v| v == value),
                Rule::NotIn(values) => !values.iter().any(|v| v == value),
                Rule::EndsWith(ends) => ends.iter().any(|e| value.ends_with(e.as_str())),
                Rule::Regex(re) => re.is_match(value),
            };
            if !ok {
                return broken(match rule {
                    Rule::Numeric => format!("`{value}` is not a number"),
                    Rule::Integer => format!("`{value}` is not an integer"),
                    Rule::Boolean => format!("`{value}` is not 0 or 1"),
                    Rule::AlphaDash => format!("`{value}` holds other than letters, digits, `-` and `_`"),
                    Rule::AlphaNum => format!("`{value}` holds other than letters and digits"),
                    Rule::Url => format!("`{value}` is not a URL"),
                    Rule::Min(n) => format!("{} {} is less than {n}", size().1, size().0),
                    Rule::Max(n) => format!("{} {} is more than {n}", size().1, size().0),
                    Rule::Between(a, b) => format!("{} {} is not between {a} and {b}", size().1, size().0),
                    Rule::Size(n) => format!("{} {} is not {n}", size().1, size().0),
                    Rule::Gt(n) => format!("{} {} is not more than {n}", size().1, size().0),
                    Rule::Digits(n) => format!("`{value}` is not {n} digits"),
                    Rule::DigitsBetween(a, b) => format!("`{value}` is not {a} to {b} digits"),
                    Rule::In(values) => format!("`{value}` is not one of {}", values.join(", ")),
                    Rule::NotIn(_) => format!("`{value}` is not allowed"),
                    Rule::EndsWith(ends) => format!("`{value}` does not end with {}", ends.join(" or ")),
                    Rule::Regex(_) => format!("`{value}` does not match"),
                    Rule::Required | Rule::Present | Rule::Nullable | Rule::String => unreachable!("always hold"),
                });
            }
        }
        Ok(())
    }
}

/// Splits a pipe string into rules; a `|` inside a `regex:` pattern's
/// delimiters belongs to the pattern.
fn split_pipes(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open_regex = false;
    for part in text.split('|') {
        if open_regex {
            let last = out.last_mut().expect("an open regex follows a rule");
            last.push('|');
            last.push_str(part);
        } else {
            out.push(part.to_string());
        }
        let last = out.last().expect("just pushed");
        open_regex = last
            .strip_prefix("regex:")
            .or_else(|| last.strip_prefix("not_regex:"))
            .is_some_and(|re| split_delimited(re).is_none());
    }
    out
}

fn parse_rule(text: &str) -> Result<(Rule, Option<String>), String> {
    let (name, params) = match text.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (text, None),
    };
    let no_params = |rule: Rule| match params {
        None => Ok((rule, None)),
        Some(_) => Err(format!("rule `{text}`: `{name}` takes no parameter")),
    };
    let number = |p: &str| -> Result<f64, String> {
        p.trim().parse::<f64>().map_err(|_| format!("rule `{text}`: `{p}` is not a number"))
    };
    let count = |p: &str| -> Result<usize, String> {
        p.trim().parse::<usize>().map_err(|_| format!("rule `{text}`: `{p}` is not a count"))
    };
    let one = || params.ok_or_else(|| format!("rule `{text}`: `{name}` needs a parameter, as `{name}:N`"));
    let two = || -> Result<(&str, &str), String> {
        one()?.split_once(',').ok_or_else(|| format!("rule `{text}`: `{name}` needs two parameters, as `{name}:A,B`"))
    };
    let list = || -> Result<Vec<String>, String> { Ok(csv(one()?)) };
    match name {
        "required" => no_params(Rule::Required),
        "present" => no_params(Rule::Present),
        "nullable" => no_params(Rule::Nullable),
        "string" => no_params(Rule::String),
        "numeric" => no_params(Rule::Numeric),
        "integer" => no_params(Rule::Integer),
        "int" => no_params(Rule::Integer).map(|(r, _)| {
            (r, Some("rule `int` is not a Laravel rule (the panel fails on it): read as `integer`".to_string()))
        }),
        "boolean" | "bool" => no_params(Rule::Boolean),
        "alpha_dash" => no_params(Rule::AlphaDash),
        "alpha_num" => no_params(Rule::AlphaNum),
        "url" => no_params(Rule::Url),
        "min" => Ok((Rule::Min(number(one()?)?), None)),
        "max" => Ok((Rule::Max(number(one()?)?), None)),
        "size" => Ok((Rule::Size(number(one()?)?), None)),
        "gt" => Ok((Rule::Gt(number(one()?)?), None)),
        "between" => {
            let (a, b) = two()?;
            Ok((Rule::Between(number(a)?, number(b)?), None))
        }
        "digits" => Ok((Rule::Digits(count(one()?)?), None)),
        "digits_between" => {
            let (a, b) = two()?;
            Ok((Rule::DigitsBetween(count(a)?, count(b)?), None))
        }
        "in" => Ok((Rule::In(list()?), None)),
        "not_in" => Ok((Rule::NotIn(list()?), None)),
        "ends_with" => Ok((Rule::EndsWith(list()?), None)),
        "regex" => Ok((Rule::Regex(php_regex(one()?).map_err(|e| format!("rule `{text}`: {e}"))?), None)),
        other => Err(format!("rule `{text}`: `{other}` is not a rule mettaton knows (see src/template/rules.rs)")),
    }
}

/// Laravel's parameter list: comma-separated, CSV quoting.
fn csv(params: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = params.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

/// A PHP pattern `/.../flags` (any non-alphanumeric delimiter, or a bracket
/// pair) split into the pattern and its flags; None when not closed.
fn split_delimited(text: &str) -> Option<(&str, &str)> {
    let open = text.chars().next()?;
    if open.is_alphanumeric() || open == '\\' || open.is_whitespace() {
        return None;
    }
    let close = match open {
        '(' => ')',
        '{' => '}',
        '[' => ']',
        '<' => '>',
        c => c,
    };
    let body = &text[open.len_utf8()..];
    let end = body.rfind(close)?;
    let flags = &body[end + close.len_utf8()..];
    flags.chars().all(|c| c.is_ascii_alphabetic()).then_some((&body[..end], flags))
}

fn php_regex(text: &str) -> Result<Regex, String> {
    let (pattern, flags) =
        split_delimited(text).ok_or_else(|| format!("`{text}` is not a delimited pattern, as `/^[a-z]+$/`"))?;
    let mut inline = String::new();
    for flag in flags.chars() {
        match flag {
            'i' | 'm' | 's' | 'x' => inline.push(flag),
            'u' | 'D' => {}
            other => return Err(format!("the pattern flag `{other}` is not supported (i, m, s, x, u are)")),
        }
    }
    let full = if inline.is_empty() { pattern.to_string() } else { format!("(?{inline}){pattern}") };
    // POSIX classes inside brackets ([[:space:]]) are the same in both engines.
    Regex::new(&full).map_err(|e| {
        let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
        format!("the pattern `{pattern}` cannot be run here ({first})")
    })
}

/// PHP's `is_numeric`, as a number.
fn php_numeric(value: &str) -> Option<f64> {
    let v = value.trim_matches(|c: char| c == ' ' || ('\t'..='\r').contains(&c));
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = all_digits(int) && all_digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    (mantissa_ok && exponent_ok).then(|| v.parse::<f64>().ok()).flatten()
}

/// PHP's `filter_var($v, FILTER_VALIDATE_INT)`.
fn php_integer(value: &str) -> bool {
    let v = value.trim_matches(|c: char| c == ' ' || ('\t'..='\r').contains(&c));
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    let canonical = digits == "0" || (digits.starts_with(|c: char| ('1'..='9').contains(&c)));
    canonical && digits.chars().all(|c| c.is_ascii_digit()) && v.parse::<i64>().is_ok()
}

/// A URL as Laravel's `url` takes it: a scheme, `://`, a host, an optional
/// port, path, query and fragment, no whitespace.
fn is_url(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else { return false };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || host.starts_with('[') => (h, Some(p)),
        _ => (host, None),
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']')
            || host.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-')));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    scheme_ok && host_ok && port_ok && !value.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests;
