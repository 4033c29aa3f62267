//! Spanned YAML documents: the first step of manifest loading (SPEC §1.2,
//! "a manifest that does not parse … is reported as `file:line:column`").
//!
//! [`parse_documents`] turns a multi-document stream into one [`Node`] tree
//! per document, every node carrying its 1-based line and column, from
//! saphyr-parser's event stream. Anchors and aliases are expanded (the alias
//! node takes the alias's position), with a budget so a "billion laughs"
//! input is an error, not an out-of-memory kill. Merge keys (`<<: *base`)
//! are applied, as kubectl's YAML reader does, and a key written twice in one
//! mapping is an error, as it is for kubectl.
//!
//! A syntax error ends the stream (the scanner cannot resynchronise); the
//! documents before it are still returned. Semantic errors (an unknown
//! alias, a duplicate key) only cost their own document.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span, Tag};

/// At most this many nodes may be produced by alias expansion in one stream.
pub const ALIAS_BUDGET: usize = 100_000;
/// Mappings and sequences may nest at most this deep.
pub const MAX_DEPTH: usize = 256;

/// One YAML node with the position where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
}

/// The content of a [`Node`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An empty value, or a plain `null`, `Null`, `NULL` or `~`.
    Null,
    /// Any other scalar, as written (quotes and escapes resolved).
    Scalar {
        /// The text.
        text: String,
        /// Written without quotes or block indicators, so `80` is a
        /// number and `true` a boolean; `"80"` and `!!str 80` are strings.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The value of `key` in a mapping (first match; keys are compared as text).
    pub fn get(&self, key: &str) -> Option<&Self> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The text of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The entries of a mapping.
    pub fn as_map(&self) -> Option<&[(Self, Self)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence.
    pub fn as_seq(&self) -> Option<&[Self]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// Whether the node is null (or empty).
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// What the node is, for messages: `a mapping`, `a sequence`, `null`,
    /// or the scalar itself (`"http"`).
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".to_owned(),
            Value::Scalar { text, .. } => format!("{text:?}"),
            Value::Seq(_) => "a sequence".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }
}

/// Why a document could not be read. Its `Display` is the problem alone;
/// the position is in the fields, for `file:line:column` diagnostics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct YamlError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What is wrong.
    pub problem: YamlProblem,
}

/// The ways a YAML document can be unreadable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum YamlProblem {
    /// The scanner or parser rejected the text (its message).
    #[error("invalid YAML: {0}")]
    Syntax(String),
    /// An alias names no anchor of this document.
    #[error("invalid YAML: alias to an unknown anchor")]
    UnknownAlias,
    /// Alias expansion went over [`ALIAS_BUDGET`].
    #[error("invalid YAML: aliases expand to more than {ALIAS_BUDGET} nodes")]
    AliasBudget,
    /// Nesting went over [`MAX_DEPTH`].
    #[error("invalid YAML: nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The same key twice in one mapping.
    #[error("invalid YAML: key {0:?} is already defined at line {1}")]
    DuplicateKey(String, u32),
    /// A merge key (`<<`) whose value is not a mapping or a list of them.
    #[error("invalid YAML: a merge key (<<) needs a mapping or a sequence of mappings")]
    BadMerge,
}

/// Parses every document of a YAML stream, in order. Empty documents (only
/// comments, or nothing between two `---`) are left out; a syntax error is
/// the last entry.
pub fn parse_documents(text: &str) -> Vec<Result<Node, YamlError>> {
    let mut out = Vec::new();
    let mut doc = DocumentBuilder::default();
    let mut alias_nodes = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(ok) => ok,
            Err(e) => {
                let (line, column) = position(*e.marker());
                let problem = YamlProblem::Syntax(e.info().to_owned());
                out.push(Err(YamlError {
                    line,
                    column,
                    problem,
                }));
                break;
            }
        };
        match event {
            Event::DocumentStart(_) => doc = DocumentBuilder::default(),
            Event::DocumentEnd => match std::mem::take(&mut doc).finish() {
                Ok(Some(root)) => out.push(Ok(root)),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            },
            Event::StreamEnd => break,
            event if doc.error.is_none() => {
                if let Err(e) = doc.event(event, span, &mut alias_nodes) {
                    doc.error = Some(e);
                }
            }
            _ => {}
        }
    }
    out
}

fn position(mark: Marker) -> (u32, u32) {
    let line = u32::try_from(mark.line()).unwrap_or(u32::MAX);
    let column = u32::try_from(mark.col().saturating_add(1)).unwrap_or(u32::MAX);
    (line, column)
}

/// A container being filled; `size` and `depth` feed the alias limits.
struct Frame {
    node: Node,
    anchor: usize,
    size: usize,
    depth: usize,
    pending_key: Option<Node>,
}

/// A finished node with its subtree size and depth.
#[derive(Clone)]
struct Built {
    node: Node,
    size: usize,
    depth: usize,
}

#[derive(Default)]
struct DocumentBuilder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Built>,
    root: Option<Node>,
    error: Option<YamlError>,
}

impl DocumentBuilder {
    fn finish(self) -> Result<Option<Node>, YamlError> {
        match (self.error, self.root) {
            (Some(e), _) => Err(e),
            (None, Some(root)) if !root.is_null() => Ok(Some(root)),
            (None, _) => Ok(None),
        }
    }

    fn event(
        &mut self,
        event: Event<'_>,
        span: Span,
        alias_nodes: &mut usize,
    ) -> Result<(), YamlError> {
        let (line, column) = position(span.start);
        let leaf = |value| Node {
            value,
            line,
            column,
        };
        let at = |problem| YamlError {
            line,
            column,
            problem,
        };
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar_value(text.into_owned(), style, tag.as_deref());
                self.attach(
                    Built {
                        node: leaf(value),
                        size: 1,
                        depth: 0,
                    },
                    anchor,
                )
                .map_err(at)
            }
            Event::SequenceStart(anchor, _) => {
                self.open(leaf(Value::Seq(Vec::new())), anchor).map_err(at)
            }
            Event::MappingStart(anchor, _) => {
                self.open(leaf(Value::Map(Vec::new())), anchor).map_err(at)
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(mut frame) = self.stack.pop() else {
                    return Ok(());
                };
                if let Value::Map(entries) = &mut frame.node.value {
                    apply_merges(entries).map_err(at)?;
                    check_duplicate_keys(entries)?;
                }
                let built = Built {
                    node: frame.node,
                    size: frame.size,
                    depth: frame.depth + 1,
                };
                self.attach(built, frame.anchor).map_err(at)
            }
            Event::Alias(id) => {
                let mut built = self
                    .anchors
                    .get(&id)
                    .ok_or_else(|| at(YamlProblem::UnknownAlias))?
                    .clone();
                *alias_nodes = alias_nodes.saturating_add(built.size);
                if *alias_nodes > ALIAS_BUDGET {
                    return Err(at(YamlProblem::AliasBudget));
                }
                built.node.line = line;
                built.node.column = column;
                self.attach(built, 0).map_err(at)
            }
            _ => Ok(()),
        }
    }

    fn open(&mut self, node: Node, anchor: usize) -> Result<(), YamlProblem> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlProblem::TooDeep);
        }
        self.stack.push(Frame {
            node,
            anchor,
            size: 1,
            depth: 0,
            pending_key: None,
        });
        Ok(())
    }

    /// Puts a finished node into its parent (or makes it the root).
    fn attach(&mut self, built: Built, anchor: usize) -> Result<(), YamlProblem> {
        if self.stack.len() + built.depth > MAX_DEPTH {
            return Err(YamlProblem::TooDeep);
        }
        if anchor != 0 {
            self.anchors.insert(anchor, built.clone());
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(built.node);
            return Ok(());
        };
        parent.size = parent.size.saturating_add(built.size);
        parent.depth = parent.depth.max(built.depth);
        match &mut parent.node.value {
            Value::Seq(items) => items.push(built.node),
            Value::Map(entries) => match parent.pending_key.take() {
                Some(key) => entries.push((key, built.node)),
                None => parent.pending_key = Some(built.node),
            },
            Value::Null | Value::Scalar { .. } => {}
        }
        Ok(())
    }
}

fn scalar_value(text: String, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    let core =
        |suffix: &str| tag.is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == suffix);
    let plain = style == ScalarStyle::Plain && !core("str");
    if core("null") || (plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")) {
        Value::Null
    } else {
        Value::Scalar { text, plain }
    }
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Scalar { text, plain: true } if text == "<<")
}

/// YAML 1.1 merge keys: entries written in the mapping win over merged ones,
/// and earlier mappings of a merged sequence win over later ones.
fn apply_merges(entries: &mut Vec<(Node, Node)>) -> Result<(), YamlProblem> {
    if !entries.iter().any(|(k, _)| is_merge_key(k)) {
        return Ok(());
    }
    let (merges, mut own): (Vec<_>, Vec<_>) = std::mem::take(entries)
        .into_iter()
        .partition(|(k, _)| is_merge_key(k));
    for (_, value) in merges {
        let sources = match value.value {
            Value::Map(map) => vec![map],
            Value::Seq(items) => items
                .into_iter()
                .map(|item| match item.value {
                    Value::Map(map) => Ok(map),
                    _ => Err(YamlProblem::BadMerge),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(YamlProblem::BadMerge),
        };
        for (key, value) in sources.into_iter().flatten() {
            if !own.iter().any(|(k, _)| k.value == key.value) {
                own.push((key, value));
            }
        }
    }
    *entries = own;
    Ok(())
}

fn check_duplicate_keys(entries: &[(Node, Node)]) -> Result<(), YamlError> {
    let mut seen: HashMap<&str, u32> = HashMap::with_capacity(entries.len());
    for (key, _) in entries {
        if let Some(text) = key.as_str()
            && let Some(first) = seen.insert(text, key.line)
        {
            let problem = YamlProblem::DuplicateKey(text.to_owned(), first);
            return Err(YamlError {
                line: key.line,
                column: key.column,
                problem,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = parse_documents(text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0).unwrap()
    }

    fn text(node: Option<&Node>) -> Option<&str> {
        node.and_then(Node::as_str)
    }

    #[test]
    fn positions_are_one_based() {
        let root = one("# comment\nkind: Service\nspec:\n  ports:\n    - port: 80\n");
        assert_eq!((root.line, root.column), (2, 1));
        let port = root
            .get("spec")
            .and_then(|s| s.get("ports"))
            .and_then(|p| p.as_seq())
            .unwrap();
        let value = port[0].get("port").unwrap();
        assert_eq!((value.line, value.column), (5, 13));
        assert_eq!(
            value.value,
            Value::Scalar {
                text: "80".into(),
                plain: true
            }
        );
    }

    #[test]
    fn multi_document_skips_empty_ones() {
        let docs = parse_documents("---\n# only a comment\n---\na: 1\n---\n---\nb: 2\n...\n");
        let docs: Vec<Node> = docs.into_iter().map(Result::unwrap).collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(text(docs[0].get("a")), Some("1"));
        assert_eq!((docs[1].line, docs[1].column), (7, 1));
        assert!(parse_documents("# nothing\n").is_empty());
        assert!(parse_documents("").is_empty());
    }

    #[test]
    fn nulls_and_quoting() {
        let root = one("a:\nb: ~\nc: null\nd: 'null'\ne: \"80\"\nf: !!str 80\ng: |\n  x\n");
        for key in ["a", "b", "c"] {
            assert!(root.get(key).unwrap().is_null(), "{key}");
        }
        assert_eq!(
            root.get("d").unwrap().value,
            Value::Scalar {
                text: "null".into(),
                plain: false
            }
        );
        assert_eq!(
            root.get("e").unwrap().value,
            Value::Scalar {
                text: "80".into(),
                plain: false
            }
        );
        assert_eq!(
            root.get("f").unwrap().value,
            Value::Scalar {
                text: "80".into(),
                plain: false
            }
        );
        assert_eq!(
            root.get("g").unwrap().value,
            Value::Scalar {
                text: "x\n".into(),
                plain: false
            }
        );
    }

    #[test]
    fn syntax_error_ends_stream_after_good_documents() {
        let docs = parse_documents("a: 1\n---\nb: 1\n  c: 2\n---\nd: 3\n");
        assert_eq!(docs.len(), 2);
        assert!(docs[0].is_ok());
        let err = docs[1].clone().unwrap_err();
        assert_eq!((err.line, err.column), (4, 4));
        assert!(matches!(err.problem, YamlProblem::Syntax(_)));
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        let root = one("base: &labels\n  app: web\ncopy: *labels\nport: &p 80\nother: *p\n");
        let copy = root.get("copy").unwrap();
        assert_eq!(text(copy.get("app")), Some("web"));
        assert_eq!((copy.line, copy.column), (3, 7));
        assert_eq!(text(root.get("other")), Some("80"));
    }

    #[test]
    fn merge_keys_keep_explicit_entries() {
        let root = one("base: &b {a: 1, b: 2}\nm:\n  <<: *b\n  b: 3\n");
        let m = root.get("m").unwrap();
        assert_eq!(text(m.get("a")), Some("1"));
        assert_eq!(text(m.get("b")), Some("3"));
        assert!(m.get("<<").is_none());
    }

    #[test]
    fn billion_laughs_is_an_error() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let docs = parse_documents(&text);
        assert_eq!(
            docs[0].as_ref().unwrap_err().problem,
            YamlProblem::AliasBudget
        );
    }

    #[test]
    fn document_errors_cost_only_their_document() {
        let docs = parse_documents("a: &x 1\n---\nb: *x\n---\na: 1\na: 2\n---\nok: yes\n");
        assert_eq!(docs.len(), 4);
        // Anchors are per document (YAML 1.2 §3.2.2.2).
        assert_eq!(
            docs[1].as_ref().unwrap_err().problem,
            YamlProblem::UnknownAlias
        );
        let dup = docs[2].as_ref().unwrap_err();
        assert_eq!(dup.problem, YamlProblem::DuplicateKey("a".into(), 5));
        assert_eq!((dup.line, dup.column), (6, 1));
        assert_eq!(text(docs[3].as_ref().unwrap().get("ok")), Some("yes"));
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let text = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
        let docs = parse_documents(&text);
        assert_eq!(docs[0].as_ref().unwrap_err().problem, YamlProblem::TooDeep);
        assert!(parse_documents(&format!("{}x\n", "- ".repeat(MAX_DEPTH)))[0].is_ok());
    }

    #[test]
    fn json_is_yaml() {
        let root = one("{\"kind\": \"Service\", \"spec\": {\"ports\": [{\"port\": 80}]}}");
        assert_eq!(text(root.get("kind")), Some("Service"));
        assert_eq!(root.get("kind").unwrap().describe(), "\"Service\"");
        assert_eq!(root.get("spec").unwrap().describe(), "a mapping");
    }
}
