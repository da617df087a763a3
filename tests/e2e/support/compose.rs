//! Reading docker-compose.yml and .env.example the way docker compose does, for the parts the
//! compose file uses: `KEY=value` env files, `${VAR}` / `${VAR:-default}` / `${VAR:?error}`
//! interpolation, YAML anchors and `<<` merge keys, and a service's environment (env_file
//! first, `environment:` over it). No Docker needed.

use std::collections::BTreeMap;
use yaml_rust2::{Yaml, YamlLoader};

/// Variables by name.
pub type Env = BTreeMap<String, String>;

/// The repository's root.
pub fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

/// A file of the repository as text.
pub fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", root())).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// An env file: `KEY=value` lines, `#` comments and blank lines. Values are taken literally
/// (the example uses no quotes, so compose and a shell read them the same way).
pub fn parse_env_file(text: &str) -> Env {
    let mut env = Env::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not KEY=value: {line}", n + 1));
        assert!(
            !value.starts_with('"') && !value.starts_with('\''),
            "line {}: keep values unquoted",
            n + 1
        );
        assert!(
            env.insert(key.to_string(), value.to_string()).is_none(),
            "{key} appears twice"
        );
    }
    env
}

/// Compose's interpolation of `text` with `vars`; `Err` is the message of a `${VAR:?message}`
/// whose variable is unset or empty (compose refuses to start then).
pub fn interpolate(text: &str, vars: &Env) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            panic!("use ${{VAR}} in the compose file, not bare $VAR: {text}");
        };
        let end = body
            .find('}')
            .unwrap_or_else(|| panic!("unclosed ${{ in {text}"));
        let expr = &body[..end];
        rest = &body[end + 1..];
        let name_end = expr
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(expr.len());
        let (name, op) = expr.split_at(name_end);
        let value = vars.get(name).map(String::as_str);
        let set = value.filter(|v| !v.is_empty());
        let resolved = match op {
            "" => value.unwrap_or("").to_string(),
            _ if op.starts_with(":-") => set.unwrap_or(&op[2..]).to_string(),
            _ if op.starts_with('-') => value.unwrap_or(&op[1..]).to_string(),
            _ if op.starts_with(":?") => match set {
                Some(v) => v.to_string(),
                None => return Err(format!("{name}: {}", &op[2..])),
            },
            _ => panic!("unsupported interpolation ${{{expr}}}"),
        };
        out.push_str(&resolved);
    }
    out.push_str(rest);
    Ok(out)
}

/// `yaml` with every `<<` merge key applied (YAML 1.1 merge, as compose does): the merged
/// maps first (the earlier of a list wins), then the map's own keys over them.
pub fn resolve_merges(yaml: &Yaml) -> Yaml {
    match yaml {
        Yaml::Hash(map) => {
            let merge_key = Yaml::String("<<".into());
            let mut out = yaml_rust2::yaml::Hash::new();
            if let Some(merged) = map.get(&merge_key) {
                let sources: Vec<Yaml> = match merged {
                    Yaml::Array(list) => list.iter().rev().cloned().collect(),
                    other => vec![other.clone()],
                };
                for source in sources {
                    if let Yaml::Hash(source) = resolve_merges(&source) {
                        out.extend(source);
                    }
                }
            }
            for (key, value) in map {
                if *key != merge_key {
                    out.insert(key.clone(), resolve_merges(value));
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(list) => Yaml::Array(list.iter().map(resolve_merges).collect()),
        other => other.clone(),
    }
}

/// docker-compose.yml, anchors and merge keys resolved.
pub fn compose_file() -> Yaml {
    let docs = YamlLoader::load_from_str(&read("docker-compose.yml"))
        .expect("docker-compose.yml is valid YAML");
    resolve_merges(&docs[0])
}

/// A scalar as compose reads it (numbers and booleans in `environment:` become text).
fn scalar(yaml: &Yaml) -> String {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(n) => n.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// One service of the compose file, interpolated with `vars` (what `.env` holds).
#[derive(Debug)]
pub struct Service {
    /// The service's name.
    pub name: String,
    /// Whether it runs the pi-payments image.
    pub runs_pi_payments: bool,
    /// The arguments after the image's entrypoint (`pi-payments`).
    pub command: Vec<String>,
    /// The process's environment: its env_file (`vars`, as .env) then `environment:`.
    pub env: Env,
    /// Its profiles (empty: always started).
    pub profiles: Vec<String>,
    /// `deploy.replicas`, interpolated.
    pub replicas: Option<String>,
}

/// Every service of `compose`, with `vars` as the `.env` file (for env_file and
/// interpolation); `Err` when compose would refuse to interpolate.
pub fn services(compose: &Yaml, vars: &Env) -> Result<Vec<Service>, String> {
    let mut out = Vec::new();
    let map = compose["services"].as_hash().expect("a services map");
    for (name, svc) in map {
        let name = name.as_str().expect("service name").to_string();
        // Built from this repository, or its image.
        let runs_pi_payments =
            !svc["build"].is_badvalue() || svc["image"].as_str() == Some("pi-payments:local");
        let mut env = Env::new();
        match &svc["env_file"] {
            Yaml::String(file) => {
                assert_eq!(file, ".env", "{name}: env_file");
                env.extend(vars.clone());
            }
            Yaml::BadValue => {}
            other => panic!("{name}: env_file {other:?}"),
        }
        if let Some(environment) = svc["environment"].as_hash() {
            for (key, value) in environment {
                let key = key.as_str().expect("variable name").to_string();
                env.insert(key, interpolate(&scalar(value), vars)?);
            }
        }
        let command = match &svc["command"] {
            Yaml::Array(args) => args
                .iter()
                .map(|a| interpolate(&scalar(a), vars))
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        let profiles = svc["profiles"]
            .as_vec()
            .map(|p| p.iter().map(scalar).collect())
            .unwrap_or_default();
        let replicas = match &svc["deploy"]["replicas"] {
            Yaml::BadValue => None,
            value => Some(interpolate(&scalar(value), vars)?),
        };
        out.push(Service {
            name,
            runs_pi_payments,
            command,
            env,
            profiles,
            replicas,
        });
    }
    Ok(out)
}

/// `pi-payments <command> --check-config` in `env` alone: exit code and stdout/stderr.
pub fn check_config(command: &[String], env: &Env) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .args(command)
        .arg("--check-config")
        .env_clear()
        .envs(env)
        .current_dir(dir.path())
        .output()
        .expect("run pi-payments");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `key: value` lines of a `--check-config` summary.
pub fn summary_fields(stdout: &str) -> Env {
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
