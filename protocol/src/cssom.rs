//! CSSOM state of a replayed page: what the recorded stylesheets contain beyond the DOM.
//!
//! The DOM model alone misses styles that never appear in the markup: rules inserted with
//! `insertRule` (CSS-in-JS), inlined `<link>` sheets, constructed sheets and
//! `adoptedStyleSheets`. The model does not parse CSS: each sheet keeps its last full text and
//! the operations applied since, in order, so a replayer can rebuild the exact sheet in a real
//! browser (which does the parsing). The log is bounded: beyond [`MAX_OPS_PER_SHEET`] operations
//! a sheet refuses more (counted).

use std::collections::HashMap;

use crate::batch::{CssChange, CssOp, NodeId};

/// Most operations remembered per sheet since its last full text.
pub const MAX_OPS_PER_SHEET: usize = 20_000;
/// Most sheets (owned plus constructed) remembered at once.
pub const MAX_SHEETS: usize = 20_000;

/// One sheet: its last full text (when one was recorded) and the operations since.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SheetState {
    /// Full text from a [`CssOp::Text`]; `None` when the sheet's text is its owner's markup.
    pub text: Option<String>,
    /// Rule operations since the text, in order (never `Text` or `Adopt`).
    pub ops: Vec<CssOp>,
}

impl SheetState {
    fn apply(&mut self, op: &CssOp) -> bool {
        match op {
            CssOp::Text(t) => {
                self.text = Some(t.clone());
                self.ops.clear();
                true
            }
            CssOp::Adopt { .. } => false,
            other => {
                if self.ops.len() >= MAX_OPS_PER_SHEET {
                    return false;
                }
                self.ops.push(other.clone());
                true
            }
        }
    }
}

/// Stylesheets of owner nodes (`<style>`, `<link>`), constructed sheets, and adoptions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CssState {
    /// Sheets owned by a node, by owner id.
    pub owned: HashMap<NodeId, SheetState>,
    /// Constructed sheets (`new CSSStyleSheet()`), by recorder sheet id.
    pub constructed: HashMap<u32, SheetState>,
    /// `adoptedStyleSheets` of a document or shadow root, by its node id.
    pub adopted: HashMap<NodeId, Vec<u32>>,
}

impl CssState {
    /// Applies one change; false when it was refused (a cap was reached).
    pub fn apply(&mut self, change: &CssChange) -> bool {
        if let CssOp::Adopt { sheets } = &change.op {
            if sheets.is_empty() {
                self.adopted.remove(&change.owner);
            } else {
                self.adopted.insert(change.owner, sheets.clone());
            }
            return true;
        }
        let full = self.owned.len() + self.constructed.len() >= MAX_SHEETS;
        let sheet = if change.owner != 0 {
            if full && !self.owned.contains_key(&change.owner) {
                return false;
            }
            self.owned.entry(change.owner).or_default()
        } else {
            if full && !self.constructed.contains_key(&change.sheet) {
                return false;
            }
            self.constructed.entry(change.sheet).or_default()
        };
        sheet.apply(&change.op)
    }

    /// Forgets what belonged to a removed node (its own sheet, its adoptions).
    pub fn forget(&mut self, id: NodeId) {
        if !self.owned.is_empty() {
            self.owned.remove(&id);
        }
        if !self.adopted.is_empty() {
            self.adopted.remove(&id);
        }
    }

    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.owned.is_empty() && self.constructed.is_empty() && self.adopted.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(owner: NodeId, sheet: u32, op: CssOp) -> CssChange {
        CssChange { owner, sheet, op }
    }

    #[test]
    fn full_text_resets_the_operation_log() {
        let mut css = CssState::default();
        css.apply(&change(5, 0, CssOp::Insert { path: vec![0], rule: "a{color:red}".into() }));
        assert_eq!(css.owned[&5].ops.len(), 1);
        css.apply(&change(5, 0, CssOp::Text("b{}".into())));
        assert_eq!(css.owned[&5], SheetState { text: Some("b{}".into()), ops: vec![] });
    }

    #[test]
    fn constructed_sheets_and_adoptions_are_kept_apart() {
        let mut css = CssState::default();
        css.apply(&change(0, 3, CssOp::Text("p{}".into())));
        css.apply(&change(1, 0, CssOp::Adopt { sheets: vec![3] }));
        assert_eq!(css.constructed[&3].text.as_deref(), Some("p{}"));
        assert_eq!(css.adopted[&1], vec![3]);
        css.apply(&change(1, 0, CssOp::Adopt { sheets: vec![] }));
        assert!(css.adopted.is_empty());
    }

    #[test]
    fn operation_log_is_bounded() {
        let mut css = CssState::default();
        let op = CssOp::Delete { path: vec![0] };
        let accepted = (0..MAX_OPS_PER_SHEET + 10).filter(|_| css.apply(&change(2, 0, op.clone()))).count();
        assert_eq!(accepted, MAX_OPS_PER_SHEET);
    }
}
