//! Checks parsed HCL against the [schema](super::schema) and keeps what is valid as a tree of
//! [`Node`]s with typed, spanned values. Every problem is collected (not just the first), each
//! with its place, so one run shows the user everything to fix.

use std::collections::HashMap;
use std::ops::Range;

use hcl::edit::Span as _;
use hcl::edit::structure::{Block, BlockLabel, Body, Structure};

use super::error::{ConfigError, Note, located, location_of};
use super::model::{SourceFile, Span, Spanned};
use super::schema::{BlockSpec, ROOT, home_of};
use super::suggest::did_you_mean;
use super::value::{Value, convert, example};

/// One validated block: its label, its attributes (absent and `null` ones left out) and its
/// nested blocks. The root node holds the top-level blocks of every file.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: &'static str,
    /// The kind of a two-label block (`rule "ban" "NAME"` → `ban`).
    pub kind: Option<Spanned<&'static str>>,
    pub label: Option<Spanned<String>>,
    /// The whole block.
    pub span: Span,
    /// The block's identifier and labels, where messages about the block point.
    pub header: Span,
    pub attrs: Vec<(&'static str, Spanned<Value>)>,
    pub children: Vec<Node>,
}

/// A [`Node`] accessor of one kind of value: `$name(attr)` is the attribute `attr` when it
/// holds a `Value::$variant`, with its place (`-> Spanned<T>`) or without (`-> T`).
macro_rules! accessor {
    ($name:ident: $variant:ident -> Spanned<$t:ty>) => {
        pub fn $name(&self, name: &str) -> Option<Spanned<$t>> {
            self.typed(name, |v| match v {
                Value::$variant(x) => Some(x.to_owned()),
                _ => None,
            })
        }
    };
    ($name:ident: $variant:ident -> $t:ty) => {
        pub fn $name(&self, name: &str) -> Option<$t> {
            self.typed(name, |v| match v {
                Value::$variant(x) => Some(*x),
                _ => None,
            })
            .map(|s| s.value)
        }
    };
}

impl Node {
    fn value(&self, name: &str) -> Option<&Spanned<Value>> {
        self.attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    fn typed<T>(&self, name: &str, extract: impl Fn(&Value) -> Option<T>) -> Option<Spanned<T>> {
        let spanned = self.value(name)?;
        Some(Spanned {
            value: extract(&spanned.value)?,
            span: spanned.span.clone(),
        })
    }

    accessor!(str: Str -> Spanned<String>);
    accessor!(bool: Bool -> bool);
    accessor!(int: Int -> Spanned<i64>);
    accessor!(float: Float -> f64);
    accessor!(size_mib: SizeMib -> u64);
    accessor!(enumeration: Enum -> Spanned<&'static str>);

    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        self.spanned_list(name)
            .map(|items| items.into_iter().map(|item| item.value).collect())
    }

    /// A list attribute with the place of each element.
    pub fn spanned_list(&self, name: &str) -> Option<Vec<Spanned<String>>> {
        let spanned = self.value(name)?;
        let Value::List(items) = &spanned.value else {
            return None;
        };
        let file = spanned.span.file;
        let items = items.iter().map(|(value, range)| Spanned {
            value: value.clone(),
            span: Span {
                file,
                range: range.clone(),
            },
        });
        Some(items.collect())
    }

    /// A list attribute as one value, with the place of the whole list.
    pub fn list_with_span(&self, name: &str) -> Option<Spanned<Vec<String>>> {
        let spanned = self.value(name)?;
        let Value::List(items) = &spanned.value else {
            return None;
        };
        Some(Spanned {
            value: items.iter().map(|(value, _)| value.clone()).collect(),
            span: spanned.span.clone(),
        })
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|child| child.name == name)
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }
}

/// Validates the parsed files (`(file index, body)`) as one configuration. Blocks may be spread
/// over files; a block defined twice, in one file or two, is an error naming both places.
pub(crate) fn validate(
    files: &[SourceFile],
    bodies: &[(usize, Body)],
) -> Result<Node, ConfigError> {
    let mut validator = Validator {
        files,
        errors: Vec::new(),
    };
    let mut seen = Seen::new();
    let mut root = Node {
        name: ROOT.name,
        kind: None,
        label: None,
        span: Span::default(),
        header: Span::default(),
        attrs: Vec::new(),
        children: Vec::new(),
    };
    for (file, body) in bodies {
        let (attrs, children) = validator.body(*file, body, &ROOT, "", &mut seen);
        root.attrs.extend(attrs);
        root.children.extend(children);
    }
    for spec in ROOT.blocks.iter().filter(|spec| spec.required) {
        if root.child(spec.name).is_none() {
            validator.missing_top_level_block(spec);
        }
    }
    ConfigError::check(validator.errors)?;
    Ok(root)
}

/// First definition of each block within one parent, keyed by name (the kind's, for a
/// two-label block) and label.
type Seen = HashMap<(&'static str, Option<String>), Span>;

struct Validator<'a> {
    files: &'a [SourceFile],
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(
        &mut self,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) {
        self.errors
            .push(located(self.files, &span, message, label, help, Vec::new()));
    }

    /// Validates the structures of one block body (or of a file's top level, for [`ROOT`]).
    fn body(
        &mut self,
        file: usize,
        body: &Body,
        spec: &'static BlockSpec,
        path: &str,
        seen: &mut Seen,
    ) -> (Vec<(&'static str, Spanned<Value>)>, Vec<Node>) {
        let mut attrs = Vec::new();
        let mut children = Vec::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attribute) => {
                    let name = attribute.key.as_str();
                    let key_span = span(file, attribute.key.span());
                    let Some(attr_spec) = spec.attr(name) else {
                        self.unknown(key_span, name, false, spec, path);
                        continue;
                    };
                    match convert(&attribute.value, attr_spec) {
                        Ok(Some(value)) => attrs.push((
                            attr_spec.name,
                            Spanned {
                                value,
                                span: span(file, attribute.value.span()),
                            },
                        )),
                        Ok(None) => {}
                        Err(problem) => {
                            let range = problem
                                .range
                                .or_else(|| attribute.value.span())
                                .unwrap_or(0..0);
                            self.error(
                                Span { file, range },
                                problem.message,
                                problem.label,
                                problem.help,
                            );
                        }
                    }
                }
                Structure::Block(block) => {
                    let name = block.ident.as_str();
                    match spec.block(name) {
                        Some(block_spec) => {
                            children.extend(self.block(file, block, block_spec, path, seen))
                        }
                        None => {
                            self.unknown(span(file, block.ident.span()), name, true, spec, path)
                        }
                    }
                }
            }
        }
        (attrs, children)
    }

    /// Validates one block; `None` when it cannot be kept (bad labels, duplicate), after its
    /// body has still been checked so that every problem in it is reported.
    fn block(
        &mut self,
        file: usize,
        block: &Block,
        spec: &'static BlockSpec,
        parent_path: &str,
        seen: &mut Seen,
    ) -> Option<Node> {
        let ident_span = span(file, block.ident.span());
        let header = Span {
            file,
            range: ident_span.range.start
                ..block
                    .labels
                    .last()
                    .and_then(label_span)
                    .map_or(ident_span.range.end, |r| r.end),
        };
        let (kind, label, mut keep) = if spec.kinds.is_empty() {
            let (label, keep) = self.labels(file, block, spec, &ident_span);
            (None, label, keep)
        } else {
            self.kind_and_name(file, block, spec, &ident_span)
        };
        // The spec the body follows: the kind's, for a two-label block. Without a known kind
        // the attributes cannot be checked, and the label error says what to fix.
        let (body_spec, kind_name) = match kind {
            Some((kind_spec, name)) => (kind_spec, Some(name)),
            None if !spec.kinds.is_empty() => return None,
            None => (spec, None),
        };
        let path = match (&kind_name, &label) {
            (Some(kind), Some(label)) => {
                format!("{} \"{}\" \"{}\"", spec.name, kind.value, label.value)
            }
            (_, Some(label)) => format!("{} \"{}\"", spec.name, label.value),
            (_, None) if parent_path.is_empty() => spec.name.to_string(),
            (_, None) => format!("{parent_path}.{}", spec.name),
        };
        if keep {
            let key = (body_spec.name, label.as_ref().map(|l| l.value.clone()));
            if let Some(first) = seen.get(&key) {
                let first = first.clone();
                self.duplicate(&header, &first, &path);
                keep = false;
            } else {
                seen.insert(key, header.clone());
            }
        }
        let (attrs, children) = self.body(file, &block.body, body_spec, &path, &mut Seen::new());
        let node = Node {
            name: spec.name,
            kind: kind_name,
            label,
            span: span(file, block.span()),
            header,
            attrs,
            children,
        };
        self.missing_in(&node, body_spec, &path);
        keep.then_some(node)
    }

    /// The labels of a two-label block (`rule "KIND" "NAME"`): the kind's spec with the kind
    /// as written, the name, and whether the block is usable.
    #[allow(clippy::type_complexity)]
    fn kind_and_name(
        &mut self,
        file: usize,
        block: &Block,
        spec: &'static BlockSpec,
        ident_span: &Span,
    ) -> (
        Option<(&'static BlockSpec, Spanned<&'static str>)>,
        Option<Spanned<String>>,
        bool,
    ) {
        let name = spec.name;
        let what = spec.label.unwrap_or("name");
        let kinds: Vec<&str> = spec.kinds.iter().map(|k| k.name).collect();
        let example = format!(
            "write `{name} \"{}\" \"NAME\" {{` where NAME is the {what}",
            kinds.first().copied().unwrap_or("KIND")
        );
        let Some(first) = block.labels.first() else {
            self.error(
                ident_span.clone(),
                format!("the `{name}` block needs two labels: the kind and the {what}"),
                format!("`{name}` without labels"),
                Some(format!("{example}; kinds: {}", kinds.join(", "))),
            );
            return (None, None, false);
        };
        let first_span = span(file, label_span(first));
        let written = first.as_str();
        let kind = match spec.kind(written) {
            Some(kind) => Some((
                kind,
                Spanned {
                    value: kind.name,
                    span: first_span.clone(),
                },
            )),
            None => {
                let help = match did_you_mean(written, kinds.iter().copied()) {
                    Some(suggestion) => format!(
                        "did you mean \"{suggestion}\"? valid kinds: {}",
                        kinds.join(", ")
                    ),
                    None => format!("valid kinds: {}", kinds.join(", ")),
                };
                self.error(
                    first_span.clone(),
                    format!("unknown kind \"{written}\" of `{name}` block"),
                    format!("not a `{name}` kind"),
                    Some(help),
                );
                None
            }
        };
        let mut keep = kind.is_some();
        let label = match block.labels.get(1) {
            None => {
                self.error(
                    first_span,
                    format!("the `{name} \"{written}\"` block needs a second label: the {what}"),
                    format!("no {what}"),
                    Some(format!("write `{name} \"{written}\" \"NAME\" {{`")),
                );
                return (kind, None, false);
            }
            Some(second) => {
                let (label, usable) = self.label(file, second, name, what);
                keep &= usable;
                label
            }
        };
        if let (Some(third), Some(last)) = (block.labels.get(2), block.labels.last()) {
            self.error(
                labels_between(file, third, last),
                format!(
                    "the `{name}` block takes two labels (the kind and the {what}), found {}",
                    block.labels.len()
                ),
                "extra label",
                Some(format!(
                    "write `{name} \"{written}\" \"{}\" {{`",
                    label.value
                )),
            );
            keep = false;
        }
        (kind, Some(label), keep)
    }

    /// Checks the labels against the spec: the label (if any) and whether the block is usable.
    fn labels(
        &mut self,
        file: usize,
        block: &Block,
        spec: &BlockSpec,
        ident_span: &Span,
    ) -> (Option<Spanned<String>>, bool) {
        let name = spec.name;
        let Some(what) = spec.label else {
            if let (Some(first), Some(last)) = (block.labels.first(), block.labels.last()) {
                self.error(
                    labels_between(file, first, last),
                    format!("the `{name}` block takes no label"),
                    "unexpected label",
                    Some(format!(
                        "write `{name} {{` and the attributes on the following lines"
                    )),
                );
            }
            return (None, true);
        };
        let Some(first) = block.labels.first() else {
            self.error(
                ident_span.clone(),
                format!("the `{name}` block needs a label: the {what}"),
                format!("`{name}` without a label"),
                Some(format!(
                    "write `{name} \"NAME\" {{` where NAME is the {what}"
                )),
            );
            return (None, false);
        };
        let mut keep = true;
        if let [_, extra @ ..] = block.labels.as_slice()
            && let (Some(second), Some(last)) = (extra.first(), extra.last())
        {
            self.error(
                labels_between(file, second, last),
                format!(
                    "the `{name}` block takes one label (the {what}), found {}",
                    block.labels.len()
                ),
                "extra label",
                Some(format!("write `{name} \"{}\" {{`", first.as_str())),
            );
            keep = false;
        }
        let (label, usable) = self.label(file, first, name, what);
        (Some(label), keep && usable)
    }

    /// A block's label as written, with its place, and whether it is usable: an empty one
    /// (the `what` of a `name` block) is an error.
    fn label(
        &mut self,
        file: usize,
        label: &BlockLabel,
        name: &str,
        what: &str,
    ) -> (Spanned<String>, bool) {
        let label = Spanned {
            value: label.as_str().to_string(),
            span: span(file, label_span(label)),
        };
        let usable = !label.value.trim().is_empty();
        if !usable {
            self.error(
                label.span.clone(),
                format!("the {what} of a `{name}` block is empty"),
                "empty label",
                None,
            );
        }
        (label, usable)
    }

    fn duplicate(&mut self, again: &Span, first: &Span, path: &str) {
        let at = location_of(self.files, first);
        self.errors.push(located(
            self.files,
            again,
            format!("`{path}` is defined twice (first at {at})"),
            "defined again here",
            Some("merge the two blocks into one, or remove one of them".into()),
            vec![Note {
                span: first.clone(),
                label: format!("`{path}` first defined here"),
            }],
        ));
    }

    /// Required attributes and nested blocks missing from a block, and `one_of` groups with
    /// none or several of their attributes written.
    fn missing_in(&mut self, node: &Node, spec: &BlockSpec, path: &str) {
        if !spec.one_of.is_empty() {
            let written: Vec<&Spanned<Value>> = spec
                .one_of
                .iter()
                .filter_map(|name| node.value(name))
                .collect();
            let names: Vec<String> = spec.one_of.iter().map(|n| format!("`{n}`")).collect();
            let names = names.join(" or ");
            match written.as_slice() {
                [] => self.error(
                    node.header.clone(),
                    format!("`{path}` needs one of {names}"),
                    "needs one of them",
                    None,
                ),
                [_] => {}
                [_, second, ..] => self.error(
                    second.span.clone(),
                    format!("`{path}` takes only one of {names}"),
                    "remove one of them",
                    None,
                ),
            }
        }
        for attr in spec.attrs.iter().filter(|attr| attr.required) {
            if node.value(attr.name).is_none() {
                self.error(
                    node.header.clone(),
                    format!("`{path}` is missing the required attribute `{}`", attr.name),
                    format!("needs `{}`", attr.name),
                    Some(format!(
                        "add `{} = {}` inside this block",
                        attr.name,
                        example(attr.kind)
                    )),
                );
            }
        }
        for block in spec.blocks.iter().filter(|block| block.required) {
            if node.child(block.name).is_none() {
                self.error(
                    node.header.clone(),
                    format!("`{path}` is missing the required block `{}`", block.name),
                    format!("needs a `{}` block", block.name),
                    None,
                );
            }
        }
    }

    fn missing_top_level_block(&mut self, spec: &BlockSpec) {
        let files: Vec<&str> = self.files.iter().map(|file| file.name.as_str()).collect();
        let example = spec
            .attrs
            .iter()
            .filter(|a| a.required)
            .map(|a| format!("{} = {}", a.name, example(a.kind)));
        let example: Vec<String> = example.collect();
        self.error(
            Span {
                file: 0,
                range: 0..0,
            },
            format!(
                "no `{}` block in the configuration ({})",
                spec.name,
                files.join(", ")
            ),
            format!("`{}` is required in one of the files", spec.name),
            Some(format!(
                "add `{} {{ {} }}` (one attribute per line)",
                spec.name,
                example.join("; ")
            )),
        );
    }

    /// An attribute or block name the spec does not know here: suggest the likely one.
    fn unknown(&mut self, at: Span, name: &str, is_block: bool, spec: &BlockSpec, path: &str) {
        let what = if is_block { "block" } else { "attribute" };
        let place = if path.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in `{path}`")
        };
        let message = format!("unknown {what} `{name}` {place}");
        let help = if is_block && spec.attr(name).is_some() {
            Some(format!(
                "`{name}` is an attribute here, not a block: write `{name} = …`"
            ))
        } else if !is_block && spec.block(name).is_some() {
            Some(format!(
                "`{name}` is a block, not an attribute: write `{name} {{`, without `=`"
            ))
        } else if let Some(suggestion) = did_you_mean(name, spec.names()) {
            Some(format!("did you mean `{suggestion}`?"))
        } else if let Some(home) = home_of(name) {
            Some(format!("`{name}` belongs {home}"))
        } else {
            let valid: Vec<String> = spec.names().map(|n| format!("`{n}`")).collect();
            (!valid.is_empty()).then(|| format!("valid {place}: {}", valid.join(", ")))
        };
        self.error(at, message, format!("unknown {what}"), help);
    }
}

fn span(file: usize, range: Option<Range<usize>>) -> Span {
    Span {
        file,
        range: range.unwrap_or(0..0),
    }
}

/// The place of a block's labels from `first` to `last`.
fn labels_between(file: usize, first: &BlockLabel, last: &BlockLabel) -> Span {
    Span {
        file,
        range: label_span(first).unwrap_or(0..0).start..label_span(last).unwrap_or(0..0).end,
    }
}

fn label_span(label: &BlockLabel) -> Option<Range<usize>> {
    match label {
        BlockLabel::String(s) => s.span(),
        BlockLabel::Ident(i) => i.span(),
    }
}
