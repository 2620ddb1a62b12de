//! Where every node of a YAML document was written.
//!
//! `serde_yaml` (the parser of record) yields a [`serde_yaml::Value`] with no
//! positions, so this index is built from a second, event-level pass with
//! `yaml-rust2`, whose events carry a line/column [`Marker`]. Nodes are
//! addressed by their [`NodePath`] (`routes[2].match.path`); mapping keys have
//! their own entries so "unknown field" can point at the key itself. A node the
//! index lacks (inside an alias, or after a point the two parsers disagree on)
//! is located at its nearest ancestor that has a position.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// The address of a node in a document: `routes[2].match.path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NodePath(Vec<Seg>);

impl NodePath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        Self(v)
    }

    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Self(v)
    }

    pub fn parent(&self) -> Option<Self> {
        let mut v = self.0.clone();
        v.pop().map(|_| Self(v))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last mapping key on the path (`routes[2].match.methods[0]` → `methods`).
    pub fn last_key(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
    }

    /// Parses the display form back (simple keys only); for tests and tools.
    pub fn parse(s: &str) -> Self {
        let mut segs = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(i) = rest.find('[') {
                let (k, idx) = rest.split_at(i);
                if !k.is_empty() {
                    segs.push(Seg::Key(k.to_string()));
                }
                rest = idx;
                for n in rest.split(['[', ']']).filter(|p| !p.is_empty()) {
                    if let Ok(n) = n.parse() {
                        segs.push(Seg::Index(n));
                    }
                }
            } else {
                segs.push(Seg::Key(rest.to_string()));
            }
        }
        Self(segs)
    }
}

fn plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-:/*{}@+".contains(&b))
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// Node and key positions of one document.
#[derive(Debug, Default)]
pub struct PositionIndex {
    values: HashMap<NodePath, Pos>,
    keys: HashMap<NodePath, Pos>,
    /// Keys written twice in one mapping: path, repeat, first.
    duplicates: Vec<(NodePath, Pos, Pos)>,
    /// Where nesting first went past [`MAX_NESTING`]; indexing stopped there.
    too_deep: Option<Pos>,
}

/// The position of the document start, the last resort.
const START: Pos = Pos { line: 1, col: 1 };

/// Deepest nesting of mappings and sequences a policy may have. serde_yaml
/// has the same limit, but libyaml's time grows with the square of the
/// depth, so documents past it are refused here, before serde_yaml sees them.
pub const MAX_NESTING: usize = 128;

/// Key text standing for a non-scalar key (a mapping or sequence used as a key).
pub const COMPLEX_KEY: &str = "\u{0}complex-key";

impl PositionIndex {
    /// Indexes `text`. Never fails: on a syntax error (or anything the event
    /// parser does not accept) the index holds what was seen up to there.
    ///
    /// Events are pulled one at a time rather than through `Parser::load`,
    /// which recurses once per nesting level: the index may be built for text
    /// serde_yaml refused (to place a duplicate key), whose depth is unbounded.
    pub fn build(text: &str) -> Self {
        let mut rx = Receiver::default();
        // yaml-rust2 has a few asserts on states it believes unreachable; a
        // panic there must not take the process down, only cost positions.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut parser = Parser::new_from_str(text);
            loop {
                match parser.next_token() {
                    Ok((Event::StreamEnd | Event::DocumentEnd, _)) => break,
                    Ok(_) if rx.index.too_deep.is_some() => break,
                    Ok((ev, mark)) => rx.on_event(ev, mark),
                    Err(e) => {
                        // The scanner looks ahead through flow nesting and
                        // gives up past 255 levels, before any event for them.
                        if e.info() == "recursion limit exceeded" {
                            rx.index.too_deep.get_or_insert(pos(e.marker()));
                        }
                        break;
                    }
                }
            }
        }));
        rx.index
    }

    /// Where the node at `path` was written, if indexed.
    pub fn value(&self, path: &NodePath) -> Option<Pos> {
        self.values.get(path).copied()
    }

    /// Where the mapping key naming `path` was written, if indexed.
    pub fn key(&self, path: &NodePath) -> Option<Pos> {
        self.keys.get(path).copied()
    }

    /// Where the document first nests deeper than [`MAX_NESTING`], if it does.
    pub fn too_deep(&self) -> Option<Pos> {
        self.too_deep
    }

    /// Keys repeated within one mapping (path, where repeated, where first written).
    pub fn duplicate_keys(&self) -> Vec<(NodePath, Pos, Pos)> {
        self.duplicates.clone()
    }

    /// The node's position, else its nearest indexed ancestor's, else the document start.
    pub fn locate(&self, path: &NodePath) -> Pos {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(pos) = self.value(&cur) {
                return pos;
            }
            p = cur.parent();
        }
        START
    }

    /// The key's position, else (for sequence items and the root) the node's.
    pub fn locate_key(&self, path: &NodePath) -> Pos {
        self.key(path).unwrap_or_else(|| self.locate(path))
    }
}

enum Frame {
    Map {
        /// The key just read, awaiting its value; `None` while a key is expected.
        key: Option<String>,
    },
    Seq {
        next: usize,
    },
    /// Inside a non-scalar mapping key: nothing is indexed until it closes.
    SkipKey {
        depth: usize,
    },
}

#[derive(Default)]
struct Receiver {
    index: PositionIndex,
    /// Repeated keys seen so far, to give each repeat a distinct path.
    repeats: usize,
    /// Containers open at this point.
    depth: usize,
    stack: Vec<Frame>,
    path: NodePath,
}

fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        // yaml-rust2 columns are 0-based (its docs say otherwise).
        col: m.col() + 1,
    }
}

impl Receiver {
    /// Called for the start of every node: assigns it a path and records it.
    /// Returns the node's path if it is a value (not a key).
    fn begin_node(
        &mut self,
        at: Pos,
        scalar_key: Option<&str>,
        container: bool,
    ) -> Option<NodePath> {
        match self.stack.last_mut() {
            Some(Frame::SkipKey { depth }) => {
                if container {
                    *depth += 1;
                }
                None
            }
            Some(Frame::Map { key }) => match key.take() {
                None => {
                    // This node is a key.
                    let text = scalar_key.unwrap_or(COMPLEX_KEY).to_string();
                    let child = self.path.key(&text);
                    let mut text = text;
                    match self.index.keys.get(&child) {
                        Some(first) => {
                            if text != COMPLEX_KEY {
                                let first = *first;
                                self.index.duplicates.push((child, at, first));
                            }
                            // The repeat's subtree gets paths of its own, so
                            // it does not read as more repeats.
                            self.repeats += 1;
                            text = format!("\u{0}repeat{}", self.repeats);
                        }
                        None => {
                            self.index.keys.insert(child, at);
                        }
                    }
                    // yaml-rust2 marks a block mapping's start after its first
                    // key; the mapping is better shown at that key.
                    if let Some(m) = self.index.values.get_mut(&self.path) {
                        if (at.line, at.col) < (m.line, m.col) {
                            *m = at;
                        }
                    }
                    *key = Some(text);
                    if container {
                        self.stack.push(Frame::SkipKey { depth: 1 });
                    }
                    None
                }
                Some(k) => Some(self.path.key(&k)),
            },
            Some(Frame::Seq { next }) => {
                let p = self.path.index(*next);
                *next += 1;
                Some(p)
            }
            None => Some(NodePath::root()),
        }
    }

    fn end_container(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::SkipKey { depth }) => {
                *depth = depth.saturating_sub(1);
                if *depth == 0 {
                    self.stack.pop();
                }
            }
            Some(_) => {
                self.stack.pop();
                self.path = self.path.parent().unwrap_or_default();
            }
            None => {}
        }
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = pos(&mark);
        match ev {
            Event::Scalar(ref s, ..) => {
                if let Some(p) = self.begin_node(at, Some(s), false) {
                    self.index.values.entry(p).or_insert(at);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.begin_node(at, Some("*alias"), false) {
                    self.index.values.entry(p).or_insert(at);
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                if let Some(p) = self.begin_node(at, None, true) {
                    self.index.values.entry(p.clone()).or_insert(at);
                    self.path = p;
                    self.stack.push(if is_map {
                        Frame::Map { key: None }
                    } else {
                        Frame::Seq { next: 0 }
                    });
                }
                // Counted apart from the stack: containers inside a key nest too.
                self.depth += 1;
                if self.depth > MAX_NESTING && self.index.too_deep.is_none() {
                    self.index.too_deep = Some(at);
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.depth = self.depth.saturating_sub(1);
                self.end_container();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(idx: &PositionIndex, path: &str) -> (usize, usize) {
        let p = idx
            .value(&NodePath::parse(path))
            .unwrap_or_else(|| panic!("{path} not indexed"));
        (p.line, p.col)
    }

    fn key_at(idx: &PositionIndex, path: &str) -> (usize, usize) {
        let p = idx
            .key(&NodePath::parse(path))
            .unwrap_or_else(|| panic!("key {path} not indexed"));
        (p.line, p.col)
    }

    const DOC: &str = "\
version: 1
routes:
  - name: a
    match:
      path: /a
      methods: [GET, HEAD]
  - name: b
    match: {path: \"/b/{id}\", host: x.example}
credentials:
  k:
    type: api_key
";

    #[test]
    fn values_and_keys_are_located() {
        let idx = PositionIndex::build(DOC);
        assert_eq!(at(&idx, "version"), (1, 10));
        assert_eq!(key_at(&idx, "version"), (1, 1));
        assert_eq!(key_at(&idx, "routes"), (2, 1));
        assert_eq!(at(&idx, "routes[0].name"), (3, 11));
        assert_eq!(key_at(&idx, "routes[0].name"), (3, 5));
        assert_eq!(at(&idx, "routes[0].match.path"), (5, 13));
        assert_eq!(at(&idx, "routes[0].match.methods[1]"), (6, 22));
        assert_eq!(at(&idx, "routes[1].match.path"), (8, 19));
        assert_eq!(key_at(&idx, "routes[1].match.host"), (8, 30));
        assert_eq!(at(&idx, "routes[1].match.host"), (8, 36));
        assert_eq!(at(&idx, ""), (1, 1));
        assert_eq!(at(&idx, "routes"), (3, 3));
        assert_eq!(at(&idx, "routes[1]"), (7, 5));
        assert_eq!(at(&idx, "routes[1].match"), (8, 12));
        assert_eq!(at(&idx, "credentials.k"), (11, 5));
        assert_eq!(key_at(&idx, "credentials.k.type"), (11, 5));
        assert_eq!(at(&idx, "credentials.k.type"), (11, 11));
    }

    #[test]
    fn missing_nodes_fall_back_to_the_nearest_ancestor() {
        let idx = PositionIndex::build(DOC);
        let p = idx.locate(&NodePath::parse("routes[0].match.nothing.deeper"));
        assert_eq!((p.line, p.col), at(&idx, "routes[0].match"));
        let p = idx.locate(&NodePath::parse("nowhere"));
        assert_eq!((p.line, p.col), at(&idx, ""));
    }

    #[test]
    fn complex_keys_and_aliases_do_not_derail_the_index() {
        let doc = "a: &x {p: 1}\n? [k, l]\n: v\nb: *x\nc: {q: 2}\n";
        let idx = PositionIndex::build(doc);
        assert_eq!(at(&idx, "a.p"), (1, 11));
        assert_eq!(at(&idx, "b"), (4, 4));
        assert_eq!(at(&idx, "c.q"), (5, 8));
        // Inside the alias: no own entry, located at the alias.
        let p = idx.locate(&NodePath::parse("b.p"));
        assert_eq!((p.line, p.col), (4, 4));
    }

    #[test]
    fn broken_documents_index_what_came_before() {
        let idx = PositionIndex::build("a: 1\nb: [\n");
        assert_eq!(at(&idx, "a"), (1, 4));
        assert_eq!(idx.locate(&NodePath::parse("zzz")), START);
    }

    #[test]
    fn nesting_past_the_limit_is_noted_where_it_happens() {
        let ok = format!(
            "a: {}{}",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        );
        assert_eq!(PositionIndex::build(&ok).too_deep(), None);
        let deep = format!("a: {}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        let at = PositionIndex::build(&deep).too_deep().unwrap();
        assert_eq!((at.line, at.col), (1, 4 + MAX_NESTING - 1));
        let in_key = format!("? {}{}\n: v\n", "[".repeat(200), "]".repeat(200));
        assert!(PositionIndex::build(&in_key).too_deep().is_some());
    }

    #[test]
    fn paths_render_and_parse() {
        let p = NodePath::root()
            .key("routes")
            .index(2)
            .key("match")
            .key("path");
        assert_eq!(p.to_string(), "routes[2].match.path");
        assert_eq!(NodePath::parse("routes[2].match.path"), p);
        assert_eq!(NodePath::root().key("a b").to_string(), "[\"a b\"]");
        assert_eq!(p.last_key(), Some("path"));
    }
}
