//! What a cross-origin child frame's recorder relays to its parent (`js/frames.js`) is checked
//! here before it joins the parent's recording. The child walks its document with node ids from
//! a range the parent gave it ([`IdRange`]); nothing it sends may name a node outside that range
//! (the parent's own nodes, another frame's): a hostile or broken child can then only change
//! its own document in the replay. The one link to the parent's nodes, the child document's
//! parent (the frame element), is set by the parent itself ([`attach`]).

use replay_protocol::{AddedSubtree, Mutation, Node, NodeKind};

/// The node ids a child frame may use: `lo..hi`.
#[derive(Debug, Clone, Copy)]
pub struct IdRange {
    pub lo: u32,
    pub hi: u32,
}

impl IdRange {
    fn has(self, id: u32) -> bool {
        id >= self.lo && id < self.hi
    }

    fn check(self, id: u32) -> Result<(), &'static str> {
        if self.has(id) { Ok(()) } else { Err("a child frame named a node outside its id range") }
    }

    fn check_nodes(self, nodes: &[Node]) -> Result<(), &'static str> {
        for n in nodes {
            self.check(n.id)?;
            self.check(n.parent)?;
        }
        Ok(())
    }
}

/// The child's document, walked as a snapshot (`nodes`, its document first with parent 0), as
/// a mutation that puts it under frame element `frame` in place of the document recorded there
/// before (`old`, 0 for none).
pub fn attach(mut nodes: Vec<Node>, frame: u32, old: u32, range: IdRange) -> Result<Mutation, &'static str> {
    let Some(first) = nodes.first_mut() else { return Err("a child frame sent no document") };
    if first.parent != 0 || first.kind != NodeKind::Document {
        return Err("a child frame's walk does not start with its document");
    }
    range.check(first.id)?;
    first.parent = frame;
    range.check_nodes(&nodes[1..])?;
    Ok(Mutation {
        removes: if old == 0 { Vec::new() } else { vec![old] },
        adds: vec![AddedSubtree { parent: frame, next: 0, nodes }],
        ..Mutation::default()
    })
}

/// Checks that a child's mutation names only nodes of its range (a next sibling may be 0).
pub fn check_mutation(m: &Mutation, range: IdRange) -> Result<(), &'static str> {
    for &id in &m.removes {
        range.check(id)?;
    }
    for add in &m.adds {
        range.check(add.parent)?;
        if add.next != 0 {
            range.check(add.next)?;
        }
        range.check_nodes(&add.nodes)?;
    }
    for a in &m.attrs {
        range.check(a.id)?;
    }
    for t in &m.texts {
        range.check(t.id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::{AttrChange, Namespace, TextChange};

    const R: IdRange = IdRange { lo: 1000, hi: 2000 };

    fn doc(id: u32, parent: u32) -> Node {
        Node { id, parent, kind: NodeKind::Document }
    }

    fn el(id: u32, parent: u32) -> Node {
        Node { id, parent, kind: NodeKind::Element { tag: "p".into(), ns: Namespace::Html, attrs: vec![] } }
    }

    #[test]
    fn a_child_document_is_attached_under_its_frame_in_place_of_the_old_one() {
        let m = attach(vec![doc(1000, 0), el(1001, 1000)], 7, 900, R).expect("valid");
        assert_eq!(m.removes, vec![900]);
        assert_eq!(m.adds.len(), 1);
        assert_eq!((m.adds[0].parent, m.adds[0].next), (7, 0));
        assert_eq!(m.adds[0].nodes[0].parent, 7, "the parent sets the link to its frame element");
        assert!(attach(vec![doc(1000, 0)], 7, 0, R).expect("valid").removes.is_empty());
    }

    #[test]
    fn a_child_cannot_reach_outside_its_range() {
        assert!(attach(vec![], 7, 0, R).is_err(), "nothing");
        assert!(attach(vec![el(1000, 0)], 7, 0, R).is_err(), "not a document");
        assert!(attach(vec![doc(1000, 3)], 7, 0, R).is_err(), "a document under a parent's node");
        assert!(attach(vec![doc(5, 0)], 7, 0, R).is_err(), "a parent's id");
        assert!(attach(vec![doc(1000, 0), el(1001, 3)], 7, 0, R).is_err(), "a node put under a parent's node");
        assert!(attach(vec![doc(1000, 0), el(2000, 1000)], 7, 0, R).is_err(), "the range's end is outside");
        let ok = Mutation {
            removes: vec![1005],
            adds: vec![AddedSubtree { parent: 1000, next: 0, nodes: vec![el(1010, 1000)] }],
            attrs: vec![AttrChange { id: 1001, name: "class".into(), value: None }],
            texts: vec![TextChange { id: 1002, text: "x".into() }],
        };
        assert!(check_mutation(&ok, R).is_ok());
        let bad = [
            Mutation { removes: vec![3], ..ok.clone() },
            Mutation { adds: vec![AddedSubtree { parent: 3, next: 0, nodes: vec![el(1010, 3)] }], ..ok.clone() },
            Mutation { adds: vec![AddedSubtree { parent: 1000, next: 4, nodes: vec![el(1010, 1000)] }], ..ok.clone() },
            Mutation { adds: vec![AddedSubtree { parent: 1000, next: 0, nodes: vec![el(4, 1000)] }], ..ok.clone() },
            Mutation { attrs: vec![AttrChange { id: 2, name: "x".into(), value: None }], ..ok.clone() },
            Mutation { texts: vec![TextChange { id: 2, text: "x".into() }], ..ok.clone() },
        ];
        for m in &bad {
            assert!(check_mutation(m, R).is_err(), "{m:?}");
        }
    }
}
