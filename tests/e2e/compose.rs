//! The compose file at the root parses and describes the production shape.

use yaml_rust2::{Yaml, YamlLoader};

#[test]
fn compose_file_names_its_services() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("docker-compose.yml is valid YAML");
    let services = docs[0]["services"].as_hash().expect("a services map");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for wanted in ["api", "worker", "redis", "postgres"] {
        assert!(
            names.contains(&wanted),
            "service {wanted} missing from {names:?}"
        );
    }
    // The API and the worker run our binary's subcommands.
    let command = |svc: &str| {
        docs[0]["services"][svc]["command"][0]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(command("api").as_deref(), Some("api"));
    assert_eq!(command("worker").as_deref(), Some("worker"));
    assert!(!docs[0]["services"]["api"]["healthcheck"].is_badvalue());
}
