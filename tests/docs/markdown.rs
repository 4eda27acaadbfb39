//! Just enough Markdown for the docs test: fenced blocks (with the `<!-- docs-test: ... -->`
//! marker before them), inline code spans, and pipe tables, each with its file and line.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One Markdown file, by its path relative to the repository root.
pub struct Doc {
    pub path: String,
    pub lines: Vec<String>,
}

/// The documents whose commands, keys and metric names are checked: README.md, docs/*.md and
/// deploy/README.md.
pub fn docs() -> Vec<Doc> {
    let mut paths = vec!["README.md".to_string()];
    let mut in_docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    in_docs.sort();
    paths.extend(in_docs);
    paths.push("deploy/README.md".to_string());
    paths.iter().map(|p| Doc::read(p)).collect()
}

impl Doc {
    pub fn read(path: &str) -> Doc {
        let text = std::fs::read_to_string(repo().join(path))
            .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        Doc {
            path: path.to_string(),
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// `file:line` for a 1-based line number.
    pub fn at(&self, line: usize) -> String {
        format!("{}:{line}", self.path)
    }

    /// Fenced code blocks, in order.
    pub fn blocks(&self) -> Vec<Block> {
        let mut blocks = Vec::new();
        let mut i = 0;
        while i < self.lines.len() {
            let Some((indent, lang)) = fence(&self.lines[i]) else {
                i += 1;
                continue;
            };
            let start = i;
            let mut body = Vec::new();
            i += 1;
            while i < self.lines.len() && fence(&self.lines[i]).is_none() {
                let line = &self.lines[i];
                body.push(
                    line.get(indent.min(leading_spaces(line))..)
                        .unwrap_or("")
                        .to_string(),
                );
                i += 1;
            }
            i += 1;
            let marker = self.lines[..start]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| {
                    l.trim()
                        .strip_prefix("<!-- docs-test:")?
                        .strip_suffix("-->")
                        .map(|m| m.trim().to_string())
                });
            blocks.push(Block {
                line: start + 1,
                lang: lang.split(',').next().unwrap_or("").trim().to_string(),
                body,
                marker,
            });
        }
        blocks
    }

    /// Inline code spans outside fenced blocks, with the line each starts on. A span may run
    /// over a line break (its newline reads as a space).
    pub fn spans(&self) -> Vec<(usize, String)> {
        let mut spans = Vec::new();
        let mut in_fence = false;
        // Paragraphs: runs of non-blank lines outside fences.
        let mut paragraph: Vec<(usize, &str)> = Vec::new();
        let flush = |paragraph: &mut Vec<(usize, &str)>, spans: &mut Vec<(usize, String)>| {
            let mut open: Option<(usize, String)> = None;
            for (n, line) in paragraph.drain(..) {
                for (k, part) in line.split('`').enumerate() {
                    if k > 0 {
                        open = match open.take() {
                            Some((at, text)) => {
                                spans.push((at, text));
                                None
                            }
                            None => Some((n, String::new())),
                        };
                    }
                    if let Some((_, text)) = open.as_mut() {
                        text.push_str(part);
                    }
                }
                if let Some((_, text)) = open.as_mut() {
                    text.push(' ');
                }
            }
        };
        for (i, line) in self.lines.iter().enumerate() {
            if fence(line).is_some() {
                flush(&mut paragraph, &mut spans);
                in_fence = !in_fence;
                continue;
            }
            if in_fence {
                continue;
            }
            if line.trim().is_empty() || line.trim_start().starts_with('|') {
                flush(&mut paragraph, &mut spans);
                // A table row is a paragraph of its own.
                if line.trim_start().starts_with('|') {
                    paragraph.push((i + 1, line));
                    flush(&mut paragraph, &mut spans);
                }
                continue;
            }
            paragraph.push((i + 1, line));
        }
        flush(&mut paragraph, &mut spans);
        spans
    }

    /// Pipe tables outside fenced blocks.
    pub fn tables(&self) -> Vec<Table> {
        let mut tables = Vec::new();
        let mut in_fence = false;
        let mut i = 0;
        while i < self.lines.len() {
            let line = &self.lines[i];
            if fence(line).is_some() {
                in_fence = !in_fence;
            }
            let is_table = !in_fence
                && line.trim_start().starts_with('|')
                && self
                    .lines
                    .get(i + 1)
                    .is_some_and(|l| l.trim_start().starts_with("|-") || l.contains("|---"));
            if !is_table {
                i += 1;
                continue;
            }
            let header = cells(line);
            let line_no = i + 1;
            i += 2;
            let mut rows = Vec::new();
            while i < self.lines.len() && self.lines[i].trim_start().starts_with('|') {
                rows.push((i + 1, cells(&self.lines[i])));
                i += 1;
            }
            tables.push(Table {
                line: line_no,
                header,
                rows,
            });
        }
        tables
    }
}

/// A fenced code block.
pub struct Block {
    /// The line of the opening fence (1-based).
    pub line: usize,
    /// The info string's first word: `sh`, `toml`, `rust`, or empty.
    pub lang: String,
    pub body: Vec<String>,
    /// The text of a `<!-- docs-test: ... -->` comment right before the fence.
    pub marker: Option<String>,
}

impl Block {
    /// The line number (1-based) of body line `k` (0-based).
    pub fn body_line(&self, k: usize) -> usize {
        self.line + 1 + k
    }

    /// The body as file contents (lines joined, with a final newline).
    pub fn text(&self) -> String {
        let mut text = self.body.join("\n");
        text.push('\n');
        text
    }
}

/// A pipe table: the header cells and each row's line and cells.
pub struct Table {
    pub line: usize,
    pub header: Vec<String>,
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

fn fence(line: &str) -> Option<(usize, &str)> {
    let indent = leading_spaces(line);
    line[indent..]
        .strip_prefix("```")
        .map(|lang| (indent, lang.trim()))
}

fn leading_spaces(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// A table row's cells, split on `|` outside code spans, trimmed.
fn cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    for c in line.trim().trim_start_matches('|').chars() {
        match c {
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '|' if !in_code => cells.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(c),
        }
    }
    if !cell.trim().is_empty() {
        cells.push(cell.trim().to_string());
    }
    cells
}

/// The code spans of a piece of text (a table cell), without the backticks.
pub fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .enumerate()
        .filter(|(k, _)| k % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// True when `path` (relative to the repository root) is a file of the repository.
pub fn in_repo(path: &str) -> bool {
    Path::new(path).is_relative() && repo().join(path).is_file()
}
