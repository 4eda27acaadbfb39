//! Enough of the shell's syntax to find the `ringws` invocations in a command line: words with
//! quotes and `$(...)`, comments, and the operators between simple commands.

/// A word with its quotes removed, or an operator (`|`, `&&`, `;`, `&`, `>`, ...).
#[derive(Clone, Debug, PartialEq)]
pub enum Token {
    Word(String),
    Op(String),
}

/// Splits a command line into words and operators; a `#` starting a word starts a comment.
/// `$(...)` stays part of its word, unevaluated.
pub fn tokens(line: &str) -> Vec<Token> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let end_word = |out: &mut Vec<Token>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            out.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => end_word(&mut out, &mut word, &mut in_word),
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    } else if chars[i] == '$' && chars.get(i + 1) == Some(&'(') {
                        i = substitution(&chars, i, &mut word);
                        continue;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
            }
            '\\' => {
                in_word = true;
                if let Some(&next) = chars.get(i + 1) {
                    word.push(next);
                    i += 1;
                }
            }
            '$' if chars.get(i + 1) == Some(&'(') => {
                in_word = true;
                i = substitution(&chars, i, &mut word);
                continue;
            }
            '|' | '&' | ';' | '>' | '<' => {
                // `2>&1` and `2>` are redirections of the word `2`.
                if c == '>' && word == "2" && in_word {
                    word.clear();
                    in_word = false;
                } else {
                    end_word(&mut out, &mut word, &mut in_word);
                }
                let mut op = c.to_string();
                while let Some(&next) = chars.get(i + 1) {
                    if matches!(next, '|' | '&' | '>') && op.len() < 2 {
                        op.push(next);
                        i += 1;
                    } else {
                        break;
                    }
                }
                if op == ">&" {
                    // `>&1`: the descriptor is part of the redirection.
                    while chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                        i += 1;
                    }
                    op = ">".into();
                    out.push(Token::Op(op));
                    out.push(Token::Word("&1".into()));
                } else {
                    out.push(Token::Op(op));
                }
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
        i += 1;
    }
    end_word(&mut out, &mut word, &mut in_word);
    out
}

/// Copies a `$(...)` starting at `i` into `word`; returns the index after it.
fn substitution(chars: &[char], mut i: usize, word: &mut String) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        word.push(chars[i]);
        match chars[i] {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The simple commands of a line (split at `|`, `&&`, `||`, `;`, `&`), redirections removed.
pub fn simple_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut current = Vec::new();
    let mut skip_target = false;
    for token in tokens(line) {
        match token {
            Token::Op(op) if op.starts_with('>') || op == "<" => skip_target = true,
            Token::Op(_) => {
                if !current.is_empty() {
                    commands.push(std::mem::take(&mut current));
                }
            }
            Token::Word(w) => {
                if skip_target {
                    skip_target = false;
                } else {
                    current.push(w);
                }
            }
        }
    }
    if !current.is_empty() {
        commands.push(current);
    }
    commands
}

/// True when the line ends with `&` (runs in the background).
pub fn backgrounded(line: &str) -> bool {
    matches!(tokens(line).last(), Some(Token::Op(op)) if op == "&")
}

/// A `ringws` invocation found in a command line.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The arguments after the program name.
    pub args: Vec<String>,
}

/// The `ringws` invocations of a command line. `strict`: a bare `ringws` in command position
/// is an invocation whatever follows (in code blocks); otherwise (prose) only when a
/// subcommand or an option follows, since prose quotes output such as `ringws listening on`.
pub fn invocations(line: &str, subcommands: &[String], strict: bool) -> Vec<Invocation> {
    let mut found = Vec::new();
    for words in simple_commands(line) {
        let mut k = 0;
        while k < words.len() {
            let w = &words[k];
            if let Some((name, _)) = w.split_once('=') {
                if !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                {
                    k += 1;
                    continue;
                }
            }
            if matches!(
                w.as_str(),
                "sudo" | "do" | "then" | "exec" | "time" | "nohup"
            ) {
                k += 1;
                continue;
            }
            break;
        }
        let Some(first) = words.get(k) else { continue };
        let (program_at, via_cargo) = match first.as_str() {
            // Tools that run a command given at the end of their own options.
            "taskset" | "systemd-run" | "env" => {
                match words[k..].iter().position(|w| w == "ringws") {
                    Some(p) => (k + p, false),
                    None => continue,
                }
            }
            "cargo" if words.get(k + 1).map(String::as_str) == Some("run") => {
                if words.iter().any(|w| w == "--example") {
                    continue;
                }
                match words[k..].iter().position(|w| w == "--") {
                    Some(p) => (k + p, true),
                    None => continue,
                }
            }
            _ => (k, false),
        };
        let program = &words[program_at];
        let args: Vec<String> = words[program_at + 1..].to_vec();
        let next = args.first().map(String::as_str).unwrap_or("");
        let is_ringws = via_cargo || program == "ringws" || program.ends_with("/ringws");
        if !is_ringws {
            continue;
        }
        let followed_by_command = subcommands.iter().any(|s| s == next) || next.starts_with('-');
        let counts = if program == "ringws" && strict {
            true
        } else {
            followed_by_command
        };
        if counts {
            found.push(Invocation { args });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_operators_and_comments() {
        let words = simple_commands(
            r#"RINGWS_JWT_SECRET="$(cat jwt.secret)" ringws serve --auth jwt & # note"#,
        );
        assert_eq!(
            words,
            vec![vec![
                "RINGWS_JWT_SECRET=$(cat jwt.secret)".to_string(),
                "ringws".into(),
                "serve".into(),
                "--auth".into(),
                "jwt".into()
            ]]
        );
        let words = simple_commands("ringws serve --print-config > ringws.toml 2>&1 | tail -1");
        assert_eq!(words[0], ["ringws", "serve", "--print-config"]);
        assert_eq!(words[1], ["tail", "-1"]);
        assert!(backgrounded("ringws serve &"));
        assert!(!backgrounded("a && b"));
    }
}
