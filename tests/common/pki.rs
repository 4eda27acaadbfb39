//! Certificates for the wss tests, made at test time with the `openssl` command line (Debian's
//! `openssl` package) in a scratch directory: CAs, certificates they sign, and one whose
//! validity ended in the past (`openssl ca -startdate/-enddate`, OpenSSL 3.0 has no
//! `x509 -not_after`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::proxy::Scratch;

/// What a certificate is for: the extensions it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A CA that may sign leaves (an intermediate when its issuer is another CA).
    Ca,
    /// A server certificate for `localhost` and `127.0.0.1`.
    Server,
    /// A client certificate (mTLS).
    Client,
}

impl Role {
    fn extensions(self) -> &'static str {
        match self {
            Role::Ca => {
                "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
                 subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            }
            Role::Server => {
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n\
                 subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            }
            Role::Client => {
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\n\
                 authorityKeyIdentifier=keyid\n"
            }
        }
    }
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// From now on, for this many days.
    Days(u32),
    /// Between two `YYYYMMDDHHMMSSZ` times (for a certificate that expired).
    Between(&'static str, &'static str),
}

/// A scratch directory of certificates: `<name>.pem` and `<name>.key` per certificate.
pub struct Pki {
    pub scratch: Scratch,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        Pki {
            scratch: Scratch::new(&format!("pki-{name}")),
        }
    }

    /// A test CA (`ca`) and a server certificate it signs for localhost and 127.0.0.1
    /// (`server`, common name `ringws test server`, serial 0x1001).
    pub fn with_server(name: &str) -> Pki {
        let pki = Pki::new(name);
        pki.root_ca("ca", "ringws test CA");
        pki.issue(
            "server",
            "ringws test server",
            "ca",
            Role::Server,
            0x1001,
            Validity::Days(30),
        );
        pki
    }

    /// The flags of `ringws serve` for a wss listener on a free port serving the certificate
    /// `name` and its key.
    pub fn serve_flags(&self, name: &str) -> Vec<String> {
        let (cert, key) = (self.cert(name), self.key(name));
        vec![
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            cert.to_str().unwrap().into(),
            "--tls-key".into(),
            key.to_str().unwrap().into(),
        ]
    }

    pub fn dir(&self) -> &Path {
        &self.scratch.0
    }

    /// `<name>.pem` (a certificate) or any other file name in the directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir().join(file)
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.pem"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.key"))
    }

    /// A self-signed root CA `name` with common name `cn`.
    pub fn root_ca(&self, name: &str, cn: &str) {
        openssl(
            self.dir(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
            ],
            &[
                format!("/CN={cn}"),
                "-addext".into(),
                "basicConstraints=critical,CA:TRUE".into(),
                "-addext".into(),
                "keyUsage=critical,keyCertSign,cRLSign".into(),
                "-keyout".into(),
                format!("{name}.key"),
                "-out".into(),
                format!("{name}.pem"),
            ],
        );
    }

    /// A certificate `name` with common name `cn` and serial `serial` (hex), signed by the CA
    /// `issuer`.
    pub fn issue(
        &self,
        name: &str,
        cn: &str,
        issuer: &str,
        role: Role,
        serial: u64,
        validity: Validity,
    ) {
        let dir = self.dir();
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
            ],
            &[
                format!("/CN={cn}"),
                "-keyout".into(),
                format!("{name}.key"),
                "-out".into(),
                format!("{name}.csr"),
            ],
        );
        let ext = format!("{name}.ext");
        std::fs::write(dir.join(&ext), role.extensions()).unwrap();
        match validity {
            Validity::Days(days) => {
                openssl(
                    dir,
                    &["x509", "-req", "-sha256"],
                    &[
                        "-in".into(),
                        format!("{name}.csr"),
                        "-CA".into(),
                        format!("{issuer}.pem"),
                        "-CAkey".into(),
                        format!("{issuer}.key"),
                        "-set_serial".into(),
                        format!("0x{serial:X}"),
                        "-days".into(),
                        days.to_string(),
                        "-extfile".into(),
                        ext,
                        "-out".into(),
                        format!("{name}.pem"),
                    ],
                );
            }
            Validity::Between(start, end) => {
                // `openssl ca` is the 3.0 way to set both dates; it wants a database.
                let db = format!("{name}.db");
                std::fs::create_dir_all(dir.join(&db)).unwrap();
                std::fs::write(dir.join(&db).join("index.txt"), "").unwrap();
                std::fs::write(dir.join(&db).join("serial"), format!("{serial:04X}\n")).unwrap();
                let config = format!(
                    "[ca]\ndefault_ca = test\n[test]\ndatabase = {db}/index.txt\n\
                     new_certs_dir = {db}\nserial = {db}/serial\ndefault_md = sha256\n\
                     policy = any\nunique_subject = no\n[any]\ncommonName = supplied\n"
                );
                std::fs::write(dir.join(format!("{name}.cnf")), config).unwrap();
                openssl(
                    dir,
                    &["ca", "-batch", "-notext"],
                    &[
                        "-config".into(),
                        format!("{name}.cnf"),
                        "-cert".into(),
                        format!("{issuer}.pem"),
                        "-keyfile".into(),
                        format!("{issuer}.key"),
                        "-in".into(),
                        format!("{name}.csr"),
                        "-startdate".into(),
                        start.into(),
                        "-enddate".into(),
                        end.into(),
                        "-extfile".into(),
                        ext,
                        "-out".into(),
                        format!("{name}.pem"),
                    ],
                );
            }
        };
    }

    /// Writes `file` as the concatenation of `parts` (PEM files in the directory): a chain.
    pub fn concat(&self, file: &str, parts: &[&str]) -> PathBuf {
        let text: String = parts
            .iter()
            .map(|p| std::fs::read_to_string(self.path(p)).unwrap())
            .collect();
        std::fs::write(self.path(file), text).unwrap();
        self.path(file)
    }

    /// What `openssl x509 -noout <flag>` says of the certificate `name` (`-serial`, ...).
    pub fn x509(&self, name: &str, flag: &str) -> String {
        let out = openssl(
            self.dir(),
            &["x509", "-noout", flag, "-in"],
            &[format!("{name}.pem")],
        );
        out.trim().to_string()
    }

    /// The base64 SHA-256 of the certificate's public key (SubjectPublicKeyInfo), as Chromium's
    /// `--ignore-certificate-errors-spki-list` wants it.
    pub fn spki_sha256(&self, name: &str) -> String {
        let script = format!(
            "openssl x509 -in {name}.pem -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | openssl enc -base64"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(self.dir())
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// Runs `openssl <fixed> <rest>` in `dir`; returns its stdout, panics with its stderr when it
/// fails (or names the package when it is not installed).
fn openssl(dir: &Path, fixed: &[&str], rest: &[String]) -> String {
    let out = Command::new("openssl")
        .args(fixed)
        .args(rest)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}): install it with `apt-get install -y openssl`")
        });
    assert!(
        out.status.success(),
        "openssl {fixed:?} {rest:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
