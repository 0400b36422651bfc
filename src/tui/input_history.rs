//! [`InputHistory`]: the lines sent from one tab, walked with Up and Down like a shell's
//! history (`app/input_line.rs` walks it, each `tab.rs` tab keeps one). Pure text.

/// Lines sent from one tab, walked with Up/Down like a shell's history.
#[derive(Debug, Clone, Default)]
pub struct InputHistory {
    entries: Vec<String>,
    /// Index into `entries` while walking; `None` when at the live line.
    position: Option<usize>,
    /// The live line, kept while walking so Down returns to it.
    draft: String,
}

/// Lines of input history kept per tab.
const HISTORY_LIMIT: usize = 500;

impl InputHistory {
    pub fn push(&mut self, line: &str) {
        self.position = None;
        if line.trim().is_empty() || self.entries.last().is_some_and(|l| l == line) {
            return;
        }
        if self.entries.len() == HISTORY_LIMIT {
            self.entries.remove(0);
        }
        self.entries.push(line.to_string());
    }

    /// The older line to show for Up, given the text now in the editor.
    pub fn older(&mut self, current: &str) -> Option<String> {
        let next = match self.position {
            None if self.entries.is_empty() => return None,
            None => {
                self.draft = current.to_string();
                self.entries.len() - 1
            }
            Some(0) => return None,
            Some(i) => i - 1,
        };
        self.position = Some(next);
        Some(self.entries[next].clone())
    }

    /// The newer line to show for Down (the saved draft after the newest).
    pub fn newer(&mut self) -> Option<String> {
        let i = self.position?;
        if i + 1 < self.entries.len() {
            self.position = Some(i + 1);
            Some(self.entries[i + 1].clone())
        } else {
            self.position = None;
            Some(std::mem::take(&mut self.draft))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_walks_and_restores_the_draft() {
        let mut h = InputHistory::default();
        h.push("first");
        h.push("second");
        assert_eq!(h.older("draft").as_deref(), Some("second"));
        assert_eq!(h.older("second").as_deref(), Some("first"));
        assert_eq!(h.older("first"), None);
        assert_eq!(h.newer().as_deref(), Some("second"));
        assert_eq!(h.newer().as_deref(), Some("draft"));
        assert_eq!(h.newer(), None);
    }
}
