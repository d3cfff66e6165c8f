//! Typed values of attributes: checks one HCL expression against its schema [`Kind`] and
//! explains, with a fix, what is wrong when it does not fit.

use std::ops::Range;

use hcl::edit::Span as _;
use hcl::edit::expr::Expression;

use super::pci::PciAddress;
use super::schema::{AttrSpec, Kind};
use super::suggest::did_you_mean;
use crate::size::parse_size_mib;

/// A validated attribute value, typed as its [`Kind`] says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    SizeMib(u64),
    /// Each element with its byte range in the file, so later stages can point at one name.
    List(Vec<(String, Range<usize>)>),
    Enum(&'static str),
}

/// What is wrong with one value, before it is given its place.
pub(crate) struct Problem {
    pub message: String,
    pub label: String,
    pub help: Option<String>,
    /// A narrower place than the whole value (one list element).
    pub range: Option<Range<usize>>,
}

impl Problem {
    fn new(message: impl Into<String>, label: impl Into<String>, help: Option<String>) -> Problem {
        Problem {
            message: message.into(),
            label: label.into(),
            help,
            range: None,
        }
    }
}

/// A placeholder value of the right type for help texts.
pub(crate) fn example(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "\"…\"",
        Kind::Bool => "true",
        Kind::Int { .. } | Kind::Float { .. } => "1",
        Kind::Size => "\"16GiB\"",
        Kind::StrList { .. } => "[\"…\"]",
        Kind::PciList => "[\"0000:3b:02.0\"]",
        Kind::Enum(values) => values.first().copied().unwrap_or("\"…\""),
        Kind::DomainName => "\"host_name\"",
    }
}

/// What kind of expression the user wrote, for "found …" messages.
fn describe(expr: &Expression) -> String {
    match expr {
        Expression::Null(_) => "null".into(),
        Expression::Bool(_) => "a boolean".into(),
        Expression::Number(_) => "a number".into(),
        Expression::String(_) => "a string".into(),
        Expression::Array(_) => "a list".into(),
        Expression::Object(_) => "an object".into(),
        Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            "a string template".into()
        }
        Expression::Variable(var) => format!("the bare word `{}`", var.as_str()),
        _ => "an expression".into(),
    }
}

/// Converts one attribute value; `Ok(None)` for `null`, which counts as absent.
pub(crate) fn convert(expr: &Expression, spec: &AttrSpec) -> Result<Option<Value>, Problem> {
    if matches!(expr, Expression::Null(_)) {
        return Ok(None);
    }
    let name = spec.name;
    let found = describe(expr);
    let wrong_type = |expected: &str, help: String| {
        let help = match expr {
            Expression::StringTemplate(_)
            | Expression::HeredocTemplate(_)
            | Expression::FuncCall(_)
            | Expression::BinaryOp(_)
            | Expression::UnaryOp(_)
            | Expression::Conditional(_)
            | Expression::Traversal(_)
            | Expression::ForExpr(_) => {
                format!("berth does not evaluate expressions or interpolations; {help}")
            }
            _ => help,
        };
        Problem::new(
            format!("`{name}` must be {expected}, found {found}"),
            found.clone(),
            Some(help),
        )
    };
    let value = match (spec.kind, expr) {
        (Kind::Str, Expression::String(s)) => {
            if s.trim().is_empty() {
                return Err(Problem::new(
                    format!("`{name}` must not be empty"),
                    "empty string",
                    None,
                ));
            }
            Value::Str(s.to_string())
        }
        (Kind::Str, Expression::Variable(var)) => {
            return Err(wrong_type(
                "a string",
                format!("put the value in quotes: `{name} = \"{}\"`", var.as_str()),
            ));
        }
        (Kind::Str, _) => return Err(wrong_type("a string", format!("write `{name} = \"…\"`"))),

        (Kind::Bool, Expression::Bool(b)) => Value::Bool(*b.value()),
        (Kind::Bool, _) => {
            return Err(wrong_type(
                "a boolean",
                format!("write `{name} = true` or `{name} = false`, without quotes"),
            ));
        }

        (Kind::Int { min, max }, Expression::Number(n)) => {
            let Some(i) = n.as_i64().filter(|_| !n.is_f64()) else {
                let (msg, label) = if n.is_f64() {
                    (
                        "a whole number".to_string(),
                        "not a whole number".to_string(),
                    )
                } else {
                    (format!("at most {max}"), format!("more than {max}"))
                };
                return Err(Problem::new(
                    format!("`{name}` must be {msg}, found {}", n.value()),
                    label,
                    None,
                ));
            };
            if i < min {
                return Err(Problem::new(
                    format!("`{name}` must be at least {min}, found {i}"),
                    format!("less than {min}"),
                    None,
                ));
            }
            if i > max {
                return Err(Problem::new(
                    format!("`{name}` must be at most {max}, found {i}"),
                    format!("more than {max}"),
                    None,
                ));
            }
            Value::Int(i)
        }
        (Kind::Int { .. }, _) => {
            return Err(wrong_type(
                "a whole number",
                format!("write `{name} = 4`, without quotes"),
            ));
        }

        (Kind::Float { min, max }, Expression::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.is_nan() || f < min {
                return Err(Problem::new(
                    format!("`{name}` must be at least {min:?}, found {}", n.value()),
                    format!("less than {min:?}"),
                    None,
                ));
            }
            if f > max {
                return Err(Problem::new(
                    format!("`{name}` must be at most {max:?}, found {}", n.value()),
                    format!("more than {max:?}"),
                    None,
                ));
            }
            Value::Float(f)
        }
        (Kind::Float { .. }, _) => {
            return Err(wrong_type(
                "a number",
                format!("write `{name} = 1.5`, without quotes"),
            ));
        }

        (Kind::Size, Expression::String(s)) => match parse_size_mib(s) {
            Ok(mib) => Value::SizeMib(mib),
            Err(e) => {
                let why = e.reason.to_string();
                return Err(Problem::new(
                    format!("invalid size \"{}\" for `{name}`: {why}", s.as_str()),
                    why,
                    Some(size_help(name)),
                ));
            }
        },
        (Kind::Size, _) => return Err(wrong_type("a size string", size_help(name))),

        (Kind::StrList { min_len }, Expression::Array(array)) => {
            let items: Vec<(String, Range<usize>)> = string_elements(name, array)?
                .into_iter()
                .map(|(s, range)| (s, range.unwrap_or(0..0)))
                .collect();
            if items.len() < min_len {
                return Err(Problem::new(
                    format!("`{name}` needs at least {min_len} element(s)"),
                    "too few elements",
                    Some(format!(
                        "remove `{name}` to use the default, or list the arguments"
                    )),
                ));
            }
            Value::List(items)
        }
        (Kind::PciList, Expression::Array(array)) => Value::List(pci_addresses(name, array)?),
        (Kind::StrList { .. } | Kind::PciList, _) => {
            return Err(wrong_type(
                "a list of strings",
                format!("write `{name} = [\"…\", \"…\"]`"),
            ));
        }

        (Kind::Enum(values), Expression::String(s)) => {
            match values.iter().find(|v| **v == s.as_str()) {
                Some(value) => Value::Enum(value),
                None => {
                    return Err(Problem::new(
                        format!("invalid value \"{}\" for `{name}`", s.as_str()),
                        format!("not a valid `{name}`"),
                        Some(enum_help(s.as_str(), values)),
                    ));
                }
            }
        }
        (Kind::Enum(values), Expression::Variable(var)) if values.contains(&var.as_str()) => {
            return Err(wrong_type(
                "a string",
                format!("put the value in quotes: `{name} = \"{}\"`", var.as_str()),
            ));
        }
        (Kind::Enum(values), _) => return Err(wrong_type("a string", enum_help("", values))),
        (Kind::DomainName, Expression::String(s)) => match domain_name_problem(s) {
            None => Value::Str(s.to_string()),
            Some(why) => {
                return Err(Problem::new(
                    format!("invalid `{name}`: {why}"),
                    "not a domain naming",
                    Some(
                        "write \"host_name\" (the default), \"short_name\", \"machine_id\" (the es.xml machine id without `_id`), \
                         or a template such as \"{short_name}.kvm\""
                            .into(),
                    ),
                ));
            }
        },
        (Kind::DomainName, _) => {
            return Err(wrong_type(
                "a string",
                "write `domain_name = \"host_name\"`".into(),
            ));
        }
    };
    Ok(Some(value))
}

/// What is wrong with an `inventory.domain_name` value, if anything: it must be `host_name`,
/// `short_name`, `machine_id`, or a template using only (and at least one of) the placeholders
/// `{host_name}`, `{short_name}`, `{machine_id}`. The same rules as the inventory's
/// `DomainNaming::parse`, which reads the value once validation has passed.
pub(crate) fn domain_name_problem(value: &str) -> Option<String> {
    const PLACEHOLDERS: [&str; 3] = ["{host_name}", "{short_name}", "{machine_id}"];
    if matches!(value, "host_name" | "short_name" | "machine_id") {
        return None;
    }
    let mut rest = value;
    let mut placeholders = 0;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        let Some(close) = after.find('}') else {
            return Some(format!("`{value}` has a `{{` without its `}}`"));
        };
        let placeholder = &after[..=close];
        if !PLACEHOLDERS.contains(&placeholder) {
            return Some(format!(
                "`{placeholder}` is not a placeholder; use {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        placeholders += 1;
        rest = &after[close + 1..];
    }
    if rest.contains('}') || placeholders == 0 {
        return Some(format!(
            "`{value}` is neither host_name, short_name nor machine_id, nor a template using {}",
            PLACEHOLDERS.join(", ")
        ));
    }
    None
}

/// A list element and its place.
type Element = (String, Option<Range<usize>>);

/// The elements of a list of non-empty strings, each with its place.
fn string_elements(name: &str, array: &hcl::edit::expr::Array) -> Result<Vec<Element>, Problem> {
    let mut items = Vec::with_capacity(array.len());
    for element in array.iter() {
        match element {
            Expression::String(s) if !s.trim().is_empty() => {
                items.push((s.to_string(), element.span()))
            }
            other => {
                let what = if matches!(other, Expression::String(_)) {
                    "an empty string".to_string()
                } else {
                    describe(other)
                };
                return Err(Problem {
                    message: format!(
                        "every element of `{name}` must be a non-empty string, found {what}"
                    ),
                    label: what,
                    help: Some("put each element in quotes".into()),
                    range: other.span(),
                });
            }
        }
    }
    Ok(items)
}

/// A list of distinct PCI addresses in canonical form; a bad or repeated element is pointed at.
fn pci_addresses(
    name: &str,
    array: &hcl::edit::expr::Array,
) -> Result<Vec<(String, Range<usize>)>, Problem> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (text, range) in string_elements(name, array)? {
        let address = PciAddress::parse(&text).map_err(|why| Problem {
            message: format!("invalid PCI address \"{text}\" in `{name}`: {why}"),
            label: "not a PCI address".into(),
            help: Some(format!(
                "write each virtual function as `lspci -D` prints it, e.g. `{name} = [\"0000:3b:02.0\", \"0000:5e:02.0\"]`"
            )),
            range: range.clone(),
        })?;
        let canonical = address.to_string();
        if !seen.insert(address) {
            return Err(Problem {
                message: format!("`{name}` lists {canonical} twice"),
                label: "already listed".into(),
                help: Some("list every virtual function once".into()),
                range,
            });
        }
        out.push((canonical, range.unwrap_or(0..0)));
    }
    Ok(out)
}

fn size_help(name: &str) -> String {
    format!(
        "write a whole number and a binary unit, e.g. `{name} = \"16GiB\"` (M/MiB, G/GiB, T/TiB; all powers of 1024)"
    )
}

fn enum_help(written: &str, values: &[&'static str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    match did_you_mean(written, values.iter().copied()) {
        Some(suggestion) if !written.is_empty() => format!(
            "did you mean \"{suggestion}\"? valid values: {}",
            quoted.join(", ")
        ),
        _ => format!("valid values: {}", quoted.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str, kind: Kind) -> Result<Option<Value>, String> {
        let expr = hcl::edit::parser::parse_expr(source).expect("valid expression");
        let spec = AttrSpec {
            name: "x",
            kind,
            required: false,
        };
        convert(&expr, &spec).map_err(|problem| problem.message)
    }

    #[test]
    fn values_of_the_right_kind_convert() {
        assert_eq!(check("\"a\"", Kind::Str), Ok(Some(Value::Str("a".into()))));
        assert_eq!(check("false", Kind::Bool), Ok(Some(Value::Bool(false))));
        assert_eq!(
            check("7", Kind::Int { min: 1, max: 9 }),
            Ok(Some(Value::Int(7)))
        );
        assert_eq!(
            check("2", Kind::Float { min: 1.0, max: 4.0 }),
            Ok(Some(Value::Float(2.0)))
        );
        assert_eq!(
            check("\"1TiB\"", Kind::Size),
            Ok(Some(Value::SizeMib(1 << 20)))
        );
        assert_eq!(
            check("[]", Kind::StrList { min_len: 0 }),
            Ok(Some(Value::List(vec![])))
        );
        // Elements keep their place: `["a", "bc"]` has "a" at 1..4 and "bc" at 6..10.
        assert_eq!(
            check("[\"a\", \"bc\"]", Kind::StrList { min_len: 1 }),
            Ok(Some(Value::List(vec![
                ("a".into(), 1..4),
                ("bc".into(), 6..10)
            ])))
        );
        assert_eq!(
            check("\"live\"", Kind::Enum(&["offline", "live"])),
            Ok(Some(Value::Enum("live")))
        );
        assert_eq!(check("null", Kind::Bool), Ok(None));
    }

    #[test]
    fn values_out_of_range_or_of_the_wrong_kind_are_explained() {
        let cases: [(&str, Kind, &str); 9] = [
            (
                "10",
                Kind::Int { min: 1, max: 9 },
                "`x` must be at most 9, found 10",
            ),
            (
                "18446744073709551615",
                Kind::Int {
                    min: 0,
                    max: i64::MAX,
                },
                "`x` must be at most 9223372036854775807, found 18446744073709551615",
            ),
            (
                "0.99",
                Kind::Float { min: 1.0, max: 2.0 },
                "`x` must be at least 1.0, found 0.99",
            ),
            (
                "1.5",
                Kind::Float { min: 0.0, max: 1.0 },
                "`x` must be at most 1.0, found 1.5",
            ),
            ("\"\"", Kind::Str, "`x` must not be empty"),
            (
                "[]",
                Kind::StrList { min_len: 1 },
                "`x` needs at least 1 element(s)",
            ),
            (
                "\"true\"",
                Kind::Bool,
                "`x` must be a boolean, found a string",
            ),
            (
                "1 + 1",
                Kind::Int { min: 0, max: 9 },
                "`x` must be a whole number, found an expression",
            ),
            (
                "{ a = 1 }",
                Kind::Str,
                "`x` must be a string, found an object",
            ),
        ];
        for (source, kind, message) in cases {
            assert_eq!(check(source, kind), Err(message.to_string()), "{source}");
        }
    }
}
