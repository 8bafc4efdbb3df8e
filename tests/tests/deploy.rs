//! The deployment pieces in `deploy/`: the OCI image `make image` builds
//! (checked with skopeo and by reading its layer) and the Kubernetes
//! manifests (checked offline against the Kubernetes schemas with
//! `kubernetes-validate`). No cluster is reachable from here; what a cluster
//! needs is in the README's deployment section.

use edgepoll_tests::{root, wasm};
use std::process::{Command, Output};

/// A command run to its end within 600 s (a runtime or tool that hangs
/// fails the test, not CI).
trait OutputWithin {
    fn output_within(&mut self) -> std::process::Output;
}

impl OutputWithin for std::process::Command {
    fn output_within(&mut self) -> std::process::Output {
        edgepoll_tests::output_bounded(self, std::time::Duration::from_secs(600))
    }
}

fn tool(name: &str, install: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is missing: {install} (make test's setup does)"
    );
    Command::new(name)
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_image_holds_the_module_alone_as_a_wasi_wasm_entrypoint_with_wasmedges_annotation() {
    let module = wasm("poll_http_server");
    let layout = std::env::temp_dir().join(format!("edgepoll-oci-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&layout);
    tool("umoci", "apt-get install umoci");
    ok(
        Command::new("bash")
            .arg(root().join("deploy/build-image.sh"))
            .arg(&module)
            .arg(&layout)
            .args(["echo", "0.0.0.0:8080"])
            .output_within(),
        "deploy/build-image.sh",
    );
    let image = format!("oci:{}:echo", layout.display());
    let config = ok(
        tool("skopeo", "apt-get install skopeo")
            .args(["inspect", "--config", &image])
            .output_within(),
        "skopeo inspect --config",
    );
    for expected in [
        "\"architecture\": \"wasm\"",
        "\"os\": \"wasi\"",
        "\"/poll_http_server.wasm\"",
        "\"0.0.0.0:8080\"",
    ] {
        assert!(
            config.contains(expected),
            "the config lacks {expected}: {config}"
        );
    }
    let manifest = ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", &image])
            .output_within(),
        "skopeo inspect --raw",
    );
    assert!(
        manifest.contains("\"module.wasm.image/variant\":\"compat-smart\""),
        "{manifest}"
    );
    // One layer, holding the module and nothing else (FROM scratch).
    let digests: Vec<&str> = manifest
        .split("\"digest\":\"sha256:")
        .skip(1)
        .map(|rest| &rest[..64])
        .collect();
    assert_eq!(digests.len(), 2, "a config and one layer: {manifest}");
    let layer = layout.join("blobs/sha256").join(digests[1]);
    let listing = ok(
        Command::new("tar").arg("-tzf").arg(&layer).output_within(),
        "tar -t",
    );
    let mut entries: Vec<&str> = listing.lines().collect();
    entries.sort();
    assert_eq!(entries, [".", "poll_http_server.wasm"]);
    let inside = Command::new("tar")
        .arg("-xzOf")
        .arg(&layer)
        .arg("poll_http_server.wasm")
        .output_within();
    assert!(
        inside.stdout == std::fs::read(&module).expect("the module"),
        "the layer's module differs from {}",
        module.display()
    );
    let _ = std::fs::remove_dir_all(&layout);
}

#[test]
fn the_kubernetes_manifests_pass_the_schemas_and_a_broken_one_does_not() {
    let install = "python3 -m pip install kubernetes-validate";
    let manifests: Vec<_> = ["runtimeclass", "deployment", "service"]
        .iter()
        .map(|m| root().join(format!("deploy/k8s/{m}.yaml")))
        .collect();
    let out = tool("kubernetes-validate", install)
        .arg("--strict")
        .args(&manifests)
        .output_within();
    let said = ok(out, "kubernetes-validate");
    assert_eq!(said.matches(" passed ").count(), 3, "{said}");
    // The validator really checks: the deployment with a wrong type fails.
    let good = std::fs::read_to_string(&manifests[1]).expect("deployment.yaml");
    let broken = std::env::temp_dir().join(format!("edgepoll-broken-{}.yaml", std::process::id()));
    std::fs::write(&broken, good.replace("replicas: 3", "replicas: three")).expect("write");
    let out = tool("kubernetes-validate", install)
        .arg("--strict")
        .arg(&broken)
        .output_within();
    let _ = std::fs::remove_file(&broken);
    assert!(
        !out.status.success(),
        "a deployment with replicas: three passed"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("spec.replicas"));
}
