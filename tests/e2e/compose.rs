//! The compose file at the root describes a deployment that starts: every pi-payments service
//! passes the binary's own configuration check (`--check-config`) with the settings of
//! `.env.example` (trial mode, one shared simulator) and with a real deployment's settings;
//! `.env.example` lists every variable the binary reads; only one process gets the seeds.
//! No Docker needed.

use crate::support::compose::{
    Env, check_config, compose_file, interpolate, parse_env_file, read, services, summary_fields,
};
use clap::CommandFactory;
use pi_payments_core::stellar::Wallet;
use yaml_rust2::Yaml;

/// The only service that signs payouts, hence the only one given the seeds.
const SIGNER: &str = "payouts";
/// Variables of .env.example for docker compose itself (read in docker-compose.yml only).
const COMPOSE_ONLY: &[&str] = &[
    "COMPOSE_PROFILES",
    "API_PORT",
    "SIM_PORT",
    "WORKER_REPLICAS",
];
/// Read by the binary without a flag of its own.
const READ_OUTSIDE_CLAP: &[&str] = &["RUST_LOG"];
/// Listed ahead of the code that reads them (issue 15 adds them in parallel): accepted in
/// .env.example while the binary does not know them yet.
const ANNOUNCED: &[&str] = &["HORIZON_RATE_LIMIT", "WORKER_QUEUES", "STUCK_AFTER"];

/// Every environment variable the binary's command line knows (`env = …` of the flags of
/// every subcommand: each takes only the groups it uses).
fn binary_variables() -> Vec<String> {
    fn collect(command: &clap::Command, vars: &mut Vec<String>) {
        vars.extend(
            command
                .get_arguments()
                .filter_map(|a| a.get_env())
                .map(|v| v.to_string_lossy().into_owned()),
        );
        for sub in command.get_subcommands() {
            collect(sub, vars);
        }
    }
    let mut vars = Vec::new();
    collect(&pi_payments::cli::Cli::command(), &mut vars);
    vars.sort();
    vars.dedup();
    vars
}

fn example() -> Env {
    parse_env_file(&read(".env.example"))
}

/// What a real deployment's .env holds: the example with the TRIAL lines replaced.
fn production(network: &str, wallet: &Wallet) -> Env {
    let mut env = example();
    for (key, value) in [
        ("COMPOSE_PROFILES", String::new()),
        ("PI_API_KEY", "a-real-server-api-key".into()),
        ("PI_API_BASE_URL", String::new()),
        ("PI_HORIZON_URL", String::new()),
        ("PI_NETWORK", network.into()),
        ("PI_APP_WALLET", wallet.public_key()),
        ("PI_WALLET_SEED", wallet.expose_seed()),
        ("PI_CHANNEL_SEEDS", Wallet::generate().expose_seed()),
        ("ADMIN_TOKEN", "0123456789abcdef0123456789abcdef".into()),
    ] {
        env.insert(key.into(), value);
    }
    env
}

/// Each service running pi-payments (the simulator aside) that compose starts with `vars` as
/// .env, checked by the binary: its summary.
fn checked_services(vars: &Env) -> Vec<(String, Env)> {
    let all = services(&compose_file(), vars).expect("compose interpolates");
    let active: Vec<&str> = vars["COMPOSE_PROFILES"].split(',').collect();
    let started = |profiles: &[String]| {
        profiles.is_empty() || profiles.iter().any(|p| active.contains(&p.as_str()))
    };
    let mut out = Vec::new();
    for svc in all
        .iter()
        .filter(|s| s.runs_pi_payments && s.command[0] != "sim" && started(&s.profiles))
    {
        let (code, stdout, stderr) = check_config(&svc.command, &svc.env);
        assert_eq!(
            code,
            Some(0),
            "service {} ({:?}) refuses its configuration: {stderr}",
            svc.name,
            svc.command
        );
        out.push((svc.name.clone(), summary_fields(&stdout)));
    }
    out
}

#[test]
fn compose_file_names_its_services() {
    let compose = compose_file();
    let services = compose["services"].as_hash().expect("a services map");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for wanted in [
        "api", "worker", "payouts", "migrate", "redis", "postgres", "sim",
    ] {
        assert!(
            names.contains(&wanted),
            "service {wanted} missing from {names:?}"
        );
    }
    // The API and the workers run our binary's subcommands.
    let command = |svc: &str| {
        compose["services"][svc]["command"][0]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(command("api").as_deref(), Some("api"));
    assert_eq!(command("worker").as_deref(), Some("worker"));
    assert_eq!(command("payouts").as_deref(), Some("worker"));
    assert_eq!(command("sim").as_deref(), Some("sim"));
    assert!(!compose["services"]["api"]["healthcheck"].is_badvalue());
}

#[test]
fn env_example_lists_every_variable_the_binary_reads() {
    let listed = example();
    for var in binary_variables()
        .iter()
        .map(String::as_str)
        .chain(READ_OUTSIDE_CLAP.iter().copied())
    {
        assert!(listed.contains_key(var), ".env.example does not list {var}");
    }
    let known = binary_variables();
    for var in listed.keys() {
        let accounted = known.contains(var)
            || COMPOSE_ONLY.contains(&var.as_str())
            || READ_OUTSIDE_CLAP.contains(&var.as_str())
            || ANNOUNCED.contains(&var.as_str());
        assert!(accounted, ".env.example lists {var}, which nothing reads");
    }
    // Each compose-only variable is used by the compose file.
    let compose_text = read("docker-compose.yml");
    for var in COMPOSE_ONLY.iter().filter(|v| **v != "COMPOSE_PROFILES") {
        assert!(compose_text.contains(&format!("${{{var}")), "{var} unused");
    }
}

/// As shipped, .env.example is trial mode: one `sim` service that the API and every worker
/// reach by URL and key, holding the wallet they pay out from.
#[test]
fn trial_mode_validates_and_shares_one_simulator() {
    let vars = example();
    assert_eq!(vars["COMPOSE_PROFILES"], "sim");
    let all = services(&compose_file(), &vars).expect("compose interpolates");
    let sim = all.iter().find(|s| s.name == "sim").expect("a sim service");
    assert_eq!(sim.profiles, ["sim"]);
    let (code, stdout, stderr) = check_config(&sim.command, &sim.env);
    assert_eq!(code, Some(0), "the sim service's flags: {stderr}");
    assert!(stdout.contains("listen: 0.0.0.0"), "{stdout}");
    let flag = |name: &str| {
        let i = sim.command.iter().position(|a| a == name).expect(name);
        sim.command[i + 1].clone()
    };
    assert_eq!(flag("--api-key"), vars["PI_API_KEY"]);
    let sim_wallet = Wallet::from_seed(&flag("--app-wallet-seed")).expect("a seed");
    assert_eq!(sim_wallet.public_key(), vars["PI_APP_WALLET"]);
    let platform = format!("http://sim:{}", flag("--platform-port"));
    let horizon = format!("http://sim:{}", flag("--horizon-port"));

    let checked = checked_services(&vars);
    assert!(checked.len() >= 4, "{checked:?}");
    for (name, summary) in &checked {
        if name == "migrate" {
            continue;
        }
        assert_eq!(
            summary["pi"], platform,
            "{name} is not pointed at the sim service"
        );
        assert_eq!(summary["horizon"], horizon, "{name}");
        assert_eq!(summary["app_wallet"], vars["PI_APP_WALLET"], "{name}");
        assert_eq!(summary["ledger"], "postgres", "{name}");
        assert_eq!(summary["queue"], "redis", "{name}");
    }
}

/// A real key, wallet, seed and channels: every service starts (`migrate` reads only the
/// ledger), Horizon follows PI_NETWORK, and only `payouts` holds the seeds.
#[test]
fn a_real_deployment_validates_with_horizon_chosen_by_network() {
    let wallet = Wallet::generate();
    for (network, horizon) in [
        ("Pi Network", "https://api.mainnet.minepi.com"),
        ("Pi Testnet", "https://api.testnet.minepi.com"),
    ] {
        let checked = checked_services(&production(network, &wallet));
        let names: Vec<&str> = checked.iter().map(|(n, _)| n.as_str()).collect();
        for wanted in ["migrate", "api", "worker", SIGNER] {
            assert!(names.contains(&wanted), "{wanted} not checked: {names:?}");
        }
        for (name, summary) in &checked {
            if name == "migrate" {
                assert!(!summary.contains_key("pi"), "migrate reads only the ledger");
                continue;
            }
            assert_eq!(summary["pi"], "https://api.minepi.com", "{name}");
            assert_eq!(summary["horizon"], horizon, "{name} on {network}");
            assert_eq!(summary["network"], network, "{name}");
            let signs = summary["payouts"].starts_with("this process holds the wallet seed");
            assert_eq!(signs, name == SIGNER, "{name}: {}", summary["payouts"]);
        }
    }
}

/// Worker replicas are safe by construction: the seeds reach one process, never scaled.
#[test]
fn only_one_process_gets_the_seeds() {
    let vars = production("Pi Network", &Wallet::generate());
    let all = services(&compose_file(), &vars).expect("compose interpolates");
    assert!(all.iter().any(|s| s.name == SIGNER), "no {SIGNER} service");
    for svc in all.iter().filter(|s| s.runs_pi_payments) {
        let has_seed = |var: &str| svc.env.get(var).is_some_and(|v| !v.is_empty());
        let signer = svc.name == SIGNER;
        assert_eq!(
            has_seed("PI_WALLET_SEED"),
            signer,
            "{}: PI_WALLET_SEED",
            svc.name
        );
        assert_eq!(
            has_seed("PI_CHANNEL_SEEDS"),
            signer,
            "{}: PI_CHANNEL_SEEDS",
            svc.name
        );
        if signer {
            assert_eq!(
                svc.replicas.as_deref(),
                Some("1"),
                "{} must not be scaled",
                svc.name
            );
        }
    }
    let worker = all.iter().find(|s| s.name == "worker").expect("worker");
    assert_eq!(
        worker.replicas.as_deref(),
        Some(vars["WORKER_REPLICAS"].as_str())
    );
}

/// Without PI_API_KEY every process would start its own simulator: compose refuses instead.
#[test]
fn compose_requires_an_api_key() {
    let mut vars = example();
    vars.insert("PI_API_KEY".into(), String::new());
    let err = services(&compose_file(), &vars).expect_err("compose must refuse");
    assert!(err.starts_with("PI_API_KEY: "), "{err}");
    assert_eq!(
        interpolate("${A:-x}/${B-y}/$${C}", &Env::new()).unwrap(),
        "x/y/${C}"
    );
}

/// A missing variable is caught: without PI_APP_WALLET the services refuse to start, which
/// the check above would report.
#[test]
fn a_missing_variable_fails_the_check() {
    let mut vars = production("Pi Network", &Wallet::generate());
    vars.remove("PI_APP_WALLET");
    let all = services(&compose_file(), &vars).expect("compose interpolates");
    let api = all.iter().find(|s| s.name == "api").expect("api");
    let (code, _, stderr) = check_config(&api.command, &api.env);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("error: PI_APP_WALLET is required"),
        "{stderr}"
    );
}

/// The image builds from sources only, with the dependencies in a layer of their own.
#[test]
fn docker_build_is_lean_and_caches_dependencies() {
    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/", "*.db", ".venv/", ".env"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
    let dockerfile = read("Dockerfile");
    let first_build = dockerfile.find("cargo build").expect("a cargo build");
    let copy_all = dockerfile.find("COPY . .").expect("COPY . .");
    assert!(
        first_build < copy_all,
        "dependencies are built before the sources are copied"
    );
    for manifest in [
        "core/Cargo.toml",
        "api/Cargo.toml",
        "worker/Cargo.toml",
        "sim/Cargo.toml",
    ] {
        assert!(
            dockerfile.contains(&format!("COPY {manifest}")),
            "{manifest}"
        );
    }
}
