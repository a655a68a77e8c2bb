//! The `xml` parser: the document read into a tree that keeps the source
//! text of every node, so that what is not edited is written back as it was
//! (comments, declaration, whitespace, attribute quoting); Wings re-indents
//! the whole file instead. quick-xml only tokenizes.

use quick_xml::Reader;
use quick_xml::escape::{escape, partial_escape, unescape};
use quick_xml::events::{BytesStart, Event};

use super::{Edit, Replacement};

enum Node {
    Element(Element),
    /// Character data, as written (escaped).
    Text(String),
    /// The content of a CDATA section.
    CData(String),
    /// A comment, processing instruction, declaration or doctype, as written.
    Other(String),
}

struct Element {
    name: String,
    /// Unescaped, in order.
    attrs: Vec<(String, String)>,
    /// The start tag as written; `None` once the attributes changed (or for
    /// a new element): written from `attrs`.
    start: Option<String>,
    /// The start tag was `<tag/>`.
    empty: bool,
    children: Vec<Node>,
    /// The end tag as written.
    end: Option<String>,
}

impl Element {
    fn new(name: &str, attr: Option<(&str, &str)>) -> Element {
        Element {
            name: name.to_string(),
            attrs: attr.map(|(k, v)| (k.to_string(), v.to_string())).into_iter().collect(),
            start: None,
            empty: true,
            children: Vec::new(),
            end: None,
        }
    }

    fn read(tag: &BytesStart, raw: &str, empty: bool) -> Result<Element, String> {
        let mut attrs = Vec::new();
        for a in tag.attributes() {
            let a = a.map_err(|e| format!("not XML: {e}"))?;
            let value = unescape(&a.value).map_err(|e| format!("not XML: {e}"))?;
            attrs.push((a.key.0.to_string(), value.into_owned()));
        }
        let name = tag.name().0.to_string();
        Ok(Element { name, attrs, start: Some(raw.to_string()), empty, children: Vec::new(), end: None })
    }

    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn set_attr(&mut self, key: &str, value: &str) {
        if self.attr(key) == Some(value) {
            return;
        }
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => self.attrs.push((key.to_string(), value.to_string())),
        }
        self.start = None;
    }

    /// The element's own text (its character data, unescaped).
    fn text(&self) -> Result<String, String> {
        let mut out = String::new();
        for c in &self.children {
            match c {
                Node::Text(raw) => out.push_str(&unescape(raw).map_err(|e| format!("not XML: {e}"))?),
                Node::CData(s) => out.push_str(s),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Sets the element's text: a leaf's content becomes the text; in an
    /// element with elements inside, the text before them (as etree does).
    fn set_text(&mut self, value: &str) {
        let text = Node::Text(partial_escape(value).into_owned());
        match self.children.iter().position(|c| matches!(c, Node::Element(_))) {
            None => self.children = vec![text],
            Some(first) => {
                self.children.drain(..first);
                self.children.insert(0, text);
            }
        }
    }

    fn write(&self, out: &mut String) {
        let attrs: String = self.attrs.iter().map(|(k, v)| format!(" {k}=\"{}\"", escape(v.as_str()))).collect();
        if self.children.is_empty() {
            match (&self.start, self.empty) {
                (Some(raw), true) => out.push_str(raw),
                (Some(raw), false) => {
                    out.push_str(raw);
                    out.push_str(self.end.as_deref().unwrap_or(&format!("</{}>", self.name)));
                }
                (None, _) => out.push_str(&format!("<{}{attrs}/>", self.name)),
            }
            return;
        }
        match &self.start {
            Some(raw) if !self.empty => out.push_str(raw),
            _ => out.push_str(&format!("<{}{attrs}>", self.name)),
        }
        write_nodes(&self.children, out);
        match &self.end {
            Some(raw) => out.push_str(raw),
            None => out.push_str(&format!("</{}>", self.name)),
        }
    }
}

fn write_nodes(nodes: &[Node], out: &mut String) {
    for n in nodes {
        match n {
            Node::Element(e) => e.write(out),
            Node::Text(raw) | Node::Other(raw) => out.push_str(raw),
            Node::CData(s) => {
                out.push_str("<![CDATA[");
                out.push_str(s);
                out.push_str("]]>");
            }
        }
    }
}

/// The document's nodes, each with its source text.
fn read(text: &str) -> Result<Vec<Node>, String> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    loop {
        let from = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| format!("not XML: {e} (at byte {from})"))?;
        let raw = &text[from..reader.buffer_position() as usize];
        let node = match event {
            Event::Eof => break,
            Event::Start(tag) => {
                stack.push(Element::read(&tag, raw, false)?);
                continue;
            }
            Event::End(_) => {
                let mut done = stack.pop().ok_or("not XML: an end tag without its start")?;
                done.end = Some(raw.to_string());
                Node::Element(done)
            }
            Event::Empty(tag) => Node::Element(Element::read(&tag, raw, true)?),
            Event::Text(_) | Event::GeneralRef(_) => Node::Text(raw.to_string()),
            Event::CData(_) => {
                let inner = raw.strip_prefix("<![CDATA[").and_then(|r| r.strip_suffix("]]>"));
                inner.map_or_else(|| Node::Other(raw.to_string()), |c| Node::CData(c.to_string()))
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => Node::Other(raw.to_string()),
        };
        let siblings = match stack.last_mut() {
            Some(parent) => &mut parent.children,
            None => &mut top,
        };
        // Text and the references in it are one node.
        match (siblings.last_mut(), node) {
            (Some(Node::Text(prev)), Node::Text(more)) => prev.push_str(&more),
            (_, node) => siblings.push(node),
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("not XML: <{}> is not closed", open.name));
    }
    Ok(top)
}

/// One step of an element path: a tag (or `*`), and maybe an attribute it
/// must have (`tag[@attr='value']`, the `@` optional).
struct Step {
    tag: String,
    attr: Option<(String, String)>,
}

impl Step {
    fn matches(&self, e: &Element) -> bool {
        (self.tag == "*" || self.tag == e.name) && self.attr.as_ref().is_none_or(|(k, v)| e.attr(k) == Some(v.as_str()))
    }
}

/// `Root.Child[@name='x.y'].Leaf` as its steps (dots inside brackets are
/// the attribute's).
fn steps(key: &str) -> Result<Vec<Step>, String> {
    let parts = super::dotted(key, usize::MAX);
    parts
        .iter()
        .map(|p| {
            let Some((tag, sel)) = p.split_once('[') else {
                return if p.is_empty() {
                    Err(format!("{key}: an empty element name"))
                } else {
                    Ok(Step { tag: p.clone(), attr: None })
                };
            };
            let attr = sel
                .strip_suffix(']')
                .map(|s| s.strip_prefix('@').unwrap_or(s))
                .and_then(|s| s.split_once('='))
                .and_then(|(k, v)| {
                    let v = v
                        .strip_prefix('\'')
                        .and_then(|v| v.strip_suffix('\''))
                        .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))?;
                    Some((k.to_string(), v.to_string()))
                });
            match attr {
                Some(attr) if !tag.is_empty() => Ok(Step { tag: tag.to_string(), attr: Some(attr) }),
                _ => Err(format!("{key}: `{p}` is not TAG or TAG[@ATTR='VALUE']")),
            }
        })
        .collect()
}

/// A value `[attr='value']` sets that attribute (Wings' form).
fn attr_value(value: &str) -> Option<(&str, &str)> {
    let (k, v) = value.strip_prefix('[')?.strip_suffix("']")?.split_once("='")?;
    (!k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_')).then_some((k, v))
}

/// The indent of one level: what stands before the root's first child
/// element on its line, else two spaces.
fn indent_unit(root: &Element) -> String {
    for (i, c) in root.children.iter().enumerate() {
        if let (Node::Element(_), Some(Node::Text(ws))) = (c, i.checked_sub(1).map(|p| &root.children[p])) {
            let unit = ws.rsplit('\n').next().unwrap_or("");
            if !unit.is_empty() && unit.trim().is_empty() {
                return unit.to_string();
            }
        }
    }
    "  ".to_string()
}

/// Adds `child` as the last element of `parent` (at `depth`), indented as
/// its elements are; returns its index.
fn add_child(parent: &mut Element, child: Element, depth: usize, unit: &str, eol: &str) -> usize {
    let last = parent.children.iter().rposition(|c| matches!(c, Node::Element(_)));
    let whitespace = |n: &Node| matches!(n, Node::Text(t) if t.trim().is_empty());
    match last {
        Some(last) => {
            let before = match last.checked_sub(1).map(|p| &parent.children[p]) {
                Some(Node::Text(ws)) if ws.trim().is_empty() => ws.clone(),
                _ => String::new(),
            };
            parent.children.insert(last + 1, Node::Element(child));
            if !before.is_empty() {
                parent.children.insert(last + 1, Node::Text(before));
                return last + 2;
            }
            last + 1
        }
        None if parent.children.iter().all(whitespace) => {
            let inner = format!("{eol}{}", unit.repeat(depth + 1));
            let outer = format!("{eol}{}", unit.repeat(depth));
            parent.children = vec![Node::Text(inner), Node::Element(child), Node::Text(outer)];
            1
        }
        None => {
            parent.children.push(Node::Element(child));
            parent.children.len() - 1
        }
    }
}

/// Makes sure the path exists (the first match at each step, created when
/// missing).
fn create(e: &mut Element, path: &[Step], depth: usize, unit: &str, eol: &str) {
    let Some((step, rest)) = path.split_first() else { return };
    let found = e.children.iter().position(|c| matches!(c, Node::Element(x) if step.matches(x)));
    let at = match found {
        Some(at) => at,
        None => {
            let attr = step.attr.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
            add_child(e, Element::new(&step.tag, attr), depth, unit, eol)
        }
    };
    if let Node::Element(child) = &mut e.children[at] {
        create(child, rest, depth + 1, unit, eol);
    }
}

/// Applies the edit to every element at the path.
fn set(e: &mut Element, path: &[Step], edit: &Edit) -> Result<(), String> {
    let Some((step, rest)) = path.split_first() else {
        if let Some(value) = &edit.value {
            match attr_value(value) {
                Some((k, v)) => e.set_attr(k, v),
                None => e.set_text(value),
            }
            return Ok(());
        }
        for r in edit.replace.iter().flatten() {
            // A replacement that sets an attribute matches that attribute's
            // value, any other the element's text.
            match attr_value(&r.value) {
                Some((k, v)) => {
                    let Some(current) = e.attr(k) else { continue };
                    let r = Replacement { matches: r.matches.clone(), value: v.to_string() };
                    if let Some(new) = r.apply(&edit.key, current)? {
                        e.set_attr(k, &new);
                        return Ok(());
                    }
                }
                None => {
                    if let Some(new) = r.apply(&edit.key, &e.text()?)? {
                        e.set_text(&new);
                        return Ok(());
                    }
                }
            }
        }
        return Ok(());
    };
    for c in &mut e.children {
        if let Node::Element(child) = c
            && step.matches(child)
        {
            set(child, rest, edit)?;
        }
    }
    Ok(())
}

/// `text` with `edits` applied: each key's elements get the value (created
/// when missing, unless the key has a `*`); a missing document gets a
/// declaration and the root the first key names.
pub fn edit(text: &str, edits: &[Edit]) -> Result<String, String> {
    let mut nodes = read(text)?;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    for edit in edits {
        let path = steps(&edit.key)?;
        let root_step = &path[0];
        if !nodes.iter().any(|n| matches!(n, Node::Element(_))) {
            if !edit.creates() {
                continue;
            }
            if root_step.tag == "*" {
                return Err(format!("{}: no root element to take `*` for", edit.key));
            }
            if nodes.is_empty() {
                nodes.push(Node::Other(r#"<?xml version="1.0" encoding="utf-8"?>"#.to_string()));
                nodes.push(Node::Text(eol.to_string()));
            }
            let attr = root_step.attr.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
            nodes.push(Node::Element(Element::new(&root_step.tag, attr)));
            nodes.push(Node::Text(eol.to_string()));
        }
        let Some(root) = nodes.iter_mut().find_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        }) else {
            continue;
        };
        if !root_step.matches(root) {
            return Err(format!(
                "{}: the root element is <{}>, not the key's `{}`",
                edit.key, root.name, root_step.tag
            ));
        }
        if edit.creates() && !path.iter().any(|s| s.tag == "*") {
            let unit = indent_unit(root);
            create(root, &path[1..], 0, &unit, eol);
        }
        set(root, &path[1..], edit)?;
    }
    let mut out = String::new();
    write_nodes(&nodes, &mut out);
    Ok(out)
}
