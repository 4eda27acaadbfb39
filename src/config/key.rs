//! What one row of the key table in `mod.rs` becomes: a field of [`Config`] with its default,
//! and a [`Key`] that the file reader, the flags, `--help`, `--print-config` and
//! [`Config::validate`] all work from.

use toml::Value;

use super::value::{Kind, RawValue};
use super::{Config, ValueError};

/// Parses a value as written into its field of a [`Config`].
type SetField = Box<dyn Fn(&mut Config, &RawValue) -> Result<(), ValueError> + Send + Sync>;
/// Reads a field of a [`Config`] as the config file writes it.
type GetField = Box<dyn Fn(&Config) -> Value + Send + Sync>;

/// One setting: the key of the config file, the flag of the same name in kebab-case, and how its
/// value is read into its field of [`Config`] and written back.
pub(crate) struct Key {
    /// The config file key, also the field of [`Config`].
    pub name: &'static str,
    /// The flag's name after `--`: the key in kebab-case.
    pub flag: String,
    /// What `--help` calls the flag's value.
    pub value_name: &'static str,
    /// The row's doc comment, one line each; its first paragraph is the `--help` text.
    doc: &'static str,
    /// What `--help` shows as the default when the printed default would mislead (it depends on
    /// the machine `--help` runs on).
    shown_default: Option<&'static str>,
    /// Repeated flags and TOML arrays make one list.
    pub list: bool,
    /// What the flag given without a value means (`--takeover`), for the keys that allow it.
    pub bare_flag: Option<&'static str>,
    set: SetField,
    get: GetField,
}

impl Key {
    /// The row of field `name` of type `T`: `field` and `field_mut` reach it in a `Config`.
    pub(super) fn new<T: 'static>(
        name: &'static str,
        value_name: &'static str,
        doc: &'static str,
        shown_default: Option<&'static str>,
        kind: Kind<T>,
        field: fn(&Config) -> &T,
        field_mut: fn(&mut Config) -> &mut T,
    ) -> Key {
        let Kind {
            parse,
            print,
            list,
            bare_flag,
        } = kind;
        Key {
            name,
            flag: name.replace('_', "-"),
            value_name,
            doc,
            shown_default,
            list,
            bare_flag,
            set: Box::new(move |config, raw| {
                *field_mut(config) = parse(raw)?;
                Ok(())
            }),
            get: Box::new(move |config| print(field(config))),
        }
    }

    /// Parses `raw` into this key's field of `config`; `config` is unchanged on error.
    pub fn set(&self, config: &mut Config, raw: &RawValue) -> Result<(), ValueError> {
        (self.set)(config, raw)
    }

    /// This key's field of `config`, as the config file writes it.
    pub fn get(&self, config: &Config) -> Value {
        (self.get)(config)
    }

    /// The flag's help: the first paragraph of the row's doc, then the default.
    pub fn help(&self, defaults: &Config) -> String {
        let summary: Vec<&str> = self
            .doc
            .lines()
            .map(str::trim)
            .take_while(|line| !line.is_empty())
            .collect();
        let default = match (self.shown_default, self.get(defaults)) {
            (Some(shown), _) => shown.to_owned(),
            (None, Value::String(text)) => text,
            (None, other) => other.to_string(),
        };
        format!("{} [default: {default}]", summary.join(" "))
    }
}

/// Declares every setting once. Each row is
///
/// ```text
/// /// Help text (first paragraph; later paragraphs only document the field).
/// name: Type = default, [serve default, ] "VALUE_NAME", kind [, shown as "default in --help"];
/// ```
///
/// and becomes the field `name` of [`Config`] with its default, and the row of [`keys`](super::keys)
/// that makes the file key `name`, the flag `--name` (kebab-case), its `--help` line ending in
/// the default, its `--print-config` line and its parser with bounds (`kind`, see
/// [`value`](super::value)).
///
/// `default` is the library's ([`Config::default`]). A row with `serve <value>` gives `ringws
/// serve` another one ([`Config::serve_defaults`]; `--help` shows it): a listener a program
/// embedding ringws never asked for must not open just because the command line opens one.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $type:ty = $default:expr, $(serve $serve:expr,)? $value_name:literal,
            $kind:expr $(, shown as $shown:literal)?;
    )*) => {
        /// The effective server configuration (defaults < TOML file < flags). Each field is the
        /// config file key of the same name and the `serve` flag of that name in kebab-case;
        /// `ringws serve --help` states each default.
        ///
        /// [`Config::default`] is the library's default; `ringws serve` starts from
        /// [`Config::serve_defaults`], which differs where the command line opens more (the
        /// admin listener).
        #[derive(Clone, Debug, PartialEq)]
        pub struct Config {
            $(
                $(#[doc = $doc])*
                pub $name: $type,
            )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    $($name: $default,)*
                }
            }
        }

        impl Config {
            /// The defaults of `ringws serve` (what `--help` and `--print-config` show): the
            /// library's, except the admin listener on 127.0.0.1:9090.
            pub fn serve_defaults() -> Self {
                Config {
                    $($name: serve_or_library_default!($default $(, $serve)?),)*
                }
            }
        }

        /// The rows of the table, in its order.
        fn table() -> Vec<Key> {
            vec![$(
                Key::new::<$type>(
                    stringify!($name),
                    $value_name,
                    concat!($($doc, "\n"),*),
                    None$(.or(Some($shown)))?,
                    $kind,
                    |config| &config.$name,
                    |config| &mut config.$name,
                ),
            )*]
        }
    };
}

/// A row's `serve` default when it has one, else its library default.
macro_rules! serve_or_library_default {
    ($default:expr) => {
        $default
    };
    ($default:expr, $serve:expr) => {
        $serve
    };
}

pub(super) use {serve_or_library_default, settings};
