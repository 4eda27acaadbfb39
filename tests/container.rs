//! The container files: the Dockerfile and deploy/container/kubernetes.yaml agree with each other
//! and with the binary. (No container engine runs on the test machines, so the image itself is
//! not built here; what can be checked without one is.)

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Dockerfile's instructions, as (INSTRUCTION, arguments), comments and continuations
/// joined.
fn instructions() -> Vec<(String, String)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            (word.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

/// A JSON-array instruction's words (`ENTRYPOINT ["a", "b"]`).
fn exec_form(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments)
        .unwrap_or_else(|e| panic!("not an exec form ({e}): {arguments}"))
}

/// Every document of the manifest.
fn manifest() -> Vec<Value> {
    let text = read("deploy/container/kubernetes.yaml");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("valid YAML"))
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container(documents: &[Value]) -> &Value {
    &of_kind(documents, "Deployment", "ringws")["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_small_and_unprivileged() {
    let steps = instructions();
    let stages: Vec<&String> = steps
        .iter()
        .filter(|(w, _)| w == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(
        stages[0].starts_with("rust:") && stages[0].ends_with(" AS build"),
        "{stages:?}"
    );
    assert!(
        stages[1].contains("distroless") || stages[1].contains("slim"),
        "{stages:?}"
    );
    let runtime: Vec<&(String, String)> = steps
        .iter()
        .skip_while(|(w, a)| !(w == "FROM" && a == stages[1]))
        .collect();
    let user = runtime
        .iter()
        .find(|(w, _)| w == "USER")
        .map(|(_, a)| a.clone())
        .expect("a USER in the runtime stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid");
    assert_ne!(uid, 0, "runs as root");
    // The build copies what Cargo.toml names; the binary lands where the manifest runs it.
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src",
        "benches/protocol.rs",
    ] {
        assert!(
            steps.iter().any(|(w, a)| {
                let words: Vec<&str> = a.split_whitespace().collect();
                w == "COPY" && words[..words.len() - 1].contains(&path)
            }),
            "{path} is not copied into the build stage"
        );
        assert!(repo().join(path).exists(), "{path}");
    }
    let copied = runtime
        .iter()
        .find(|(w, a)| w == "COPY" && a.starts_with("--from=build "))
        .map(|(_, a)| a.split_whitespace().last().unwrap().to_owned())
        .expect("the binary copied from the build stage");
    let entrypoint = runtime
        .iter()
        .find(|(w, _)| w == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert_eq!(exec_form(&entrypoint.1), std::slice::from_ref(&copied));
    let documents = manifest();
    let command = container(&documents)["command"]
        .as_sequence()
        .expect("a command");
    assert_eq!(command[0].as_str(), Some(copied.as_str()));
    let manifest_uid = container(&documents)["securityContext"]["runAsUser"].as_u64();
    assert_eq!(
        manifest_uid,
        Some(u64::from(uid)),
        "the manifest's runAsUser"
    );
    // The default command is one `ringws serve` accepts, on the ports the image exposes.
    let cmd = exec_form(&runtime.iter().find(|(w, _)| w == "CMD").expect("CMD").1);
    let out = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args(&cmd)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exposed: Vec<&str> = runtime
        .iter()
        .filter(|(w, _)| w == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace())
        .collect();
    for flag in ["--listen", "--admin-listen"] {
        let address = &cmd[cmd.iter().position(|a| a == flag).expect(flag) + 1];
        let port = address.rsplit(':').next().unwrap();
        assert!(
            exposed.contains(&port),
            "{flag} {address} is not exposed: {exposed:?}"
        );
    }
}

#[test]
fn the_seccomp_profile_the_files_name_allows_io_uring() {
    let path: PathBuf = repo().join("deploy/container/seccomp-ringws.json");
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("JSON");
    let allowed: Vec<&str> = profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rule| rule["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|rule| rule["names"].as_array().unwrap())
        .filter_map(|name| name.as_str())
        .collect();
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(allowed.contains(&call), "{call} not allowed");
    }
    assert!(
        read("Dockerfile").contains("--security-opt seccomp=deploy/container/seccomp-ringws.json")
    );
    let documents = manifest();
    let seccomp = &of_kind(&documents, "Deployment", "ringws")["spec"]["template"]["spec"]
        ["securityContext"]["seccompProfile"];
    assert_eq!(seccomp["type"], "Localhost");
    assert_eq!(seccomp["localhostProfile"], "profiles/seccomp-ringws.json");
}

#[test]
fn the_manifest_probes_readyz_and_serves_the_admin_port_for_scraping_and_publishing() {
    let documents = manifest();
    let ringws = container(&documents);
    assert!(
        ringws["image"].as_str().unwrap().starts_with("ringws:"),
        "{:?}",
        ringws["image"]
    );
    let ports: Vec<(String, u64)> = ringws["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [("ws".to_owned(), 9001), ("admin".to_owned(), 9090)]);
    let readiness = &ringws["readinessProbe"]["httpGet"];
    assert_eq!(
        (readiness["path"].as_str(), readiness["port"].as_str()),
        (Some("/readyz"), Some("admin"))
    );
    let command: Vec<&str> = ringws["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let after = |flag: &str| command[command.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(after("--admin-listen"), "0.0.0.0:9090");
    if command.contains(&"--cores") {
        assert!(
            after("--cores").parse::<u32>().is_err(),
            "--cores is hard-coded: {command:?}"
        );
    }
    // Scraping: the pod annotations name the admin port; publishing and scraping every pod: the
    // headless Service.
    let annotations =
        &of_kind(&documents, "Deployment", "ringws")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], "9090");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let admin = &of_kind(&documents, "Service", "ringws-admin")["spec"];
    assert_eq!(admin["clusterIP"], "None");
    assert_eq!(admin["ports"][0]["targetPort"], "admin");
    let clients = &of_kind(&documents, "Service", "ringws")["spec"];
    assert_eq!(clients["ports"][0]["targetPort"], "ws");
}
