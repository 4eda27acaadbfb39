//! Which topics this node has subscribers of, at node level: what a cross-node bus subscribes
//! to. Each core reports when its own count of a topic goes 0 -> 1 or 1 -> 0; the node wants a
//! topic while at least one core has a subscriber. Topics whose node-level want flipped since
//! the bus last looked are kept as "changed" (a set: a topic that flipped and back between two
//! looks is listed once, and the bus compares with what it holds, so it does nothing).

use std::collections::{HashMap, HashSet};

#[derive(Debug, Default)]
pub struct Interest {
    /// Topic -> cores with at least one subscriber of it (absent when none).
    cores_with: HashMap<Box<str>, u32>,
    changed: HashSet<Box<str>>,
}

impl Interest {
    /// `core_has`: whether the reporting core now has a subscriber of `topic` (it only reports
    /// its own transitions). Returns true when the node-level want flipped.
    pub fn core_changed(&mut self, topic: &str, core_has: bool) -> bool {
        let flipped = if core_has {
            let n = self.cores_with.entry(topic.into()).or_insert(0);
            *n += 1;
            *n == 1
        } else {
            match self.cores_with.get_mut(topic) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    self.cores_with.remove(topic);
                    true
                }
                None => false, // never counted: nothing to undo
            }
        };
        if flipped {
            self.changed.insert(topic.into());
        }
        flipped
    }

    /// Does any core have a subscriber of `topic`?
    pub fn wants(&self, topic: &str) -> bool {
        self.cores_with.contains_key(topic)
    }

    /// Topics whose want flipped since the last call.
    pub fn take_changed(&mut self) -> Vec<Box<str>> {
        self.changed.drain().collect()
    }

    /// Every topic the node wants (after a reconnect, all of them are subscribed again).
    pub fn wanted(&self) -> Vec<Box<str>> {
        self.cores_with.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_wants_a_topic_from_its_first_core_to_its_last() {
        let mut i = Interest::default();
        assert!(i.core_changed("a", true), "first core: 0 -> 1");
        assert!(!i.core_changed("a", true), "second core");
        assert!(i.wants("a"));
        assert_eq!(i.take_changed(), ["a".into()]);
        assert!(!i.core_changed("a", false), "one core still has it");
        assert!(i.take_changed().is_empty());
        assert!(i.core_changed("a", false), "last core: 1 -> 0");
        assert!(!i.wants("a"));
        assert_eq!(i.take_changed(), ["a".into()]);
        assert!(!i.core_changed("a", false), "a stray leave changes nothing");
        assert!(!i.wants("a"));
    }

    #[test]
    fn a_flip_and_back_is_listed_once_and_wanted_lists_the_rest() {
        let mut i = Interest::default();
        i.core_changed("a", true);
        i.core_changed("a", false);
        i.core_changed("b", true);
        let mut changed = i.take_changed();
        changed.sort();
        assert_eq!(changed, ["a".into(), "b".into()]);
        assert_eq!(i.wanted(), ["b".into()]);
    }
}
