//! The deployment pieces in `deploy/`: the OCI image `make image` builds
//! (checked with skopeo and by reading its layer) and the Kubernetes
//! manifests (checked offline against the Kubernetes schemas with
//! `kubernetes-validate`). No cluster is reachable from here; what a cluster
//! needs is in the README's deployment section.

use edgepoll_tests::{root, wasm, TempPath};
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

/// What Python prints running `script` with `input` on its standard input.
fn python(script: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed: apt-get install python3");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("written");
    drop(stdin);
    let out = edgepoll_tests::wait_bounded(child, std::time::Duration::from_secs(60));
    ok(out, "python3")
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
    let layout =
        TempPath(std::env::temp_dir().join(format!("edgepoll-oci-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&layout);
    tool("umoci", "apt-get install umoci");
    let build = |layout: &std::path::Path, module: &std::path::Path, epoch: Option<&str>| {
        let mut command = Command::new("bash");
        command
            .arg(root().join("deploy/build-image.sh"))
            .arg(module)
            .arg(layout)
            .args(["echo", "0.0.0.0:8080"])
            .env_remove("SOURCE_DATE_EPOCH");
        if let Some(epoch) = epoch {
            command.env("SOURCE_DATE_EPOCH", epoch);
        }
        ok(command.output_within(), "deploy/build-image.sh");
    };
    build(&layout, &module, None);
    let image = format!("oci:{}:echo", layout.display());
    let config = ok(
        tool("skopeo", "apt-get install skopeo")
            .args(["inspect", "--config", &image])
            .output_within(),
        "skopeo inspect --config",
    );
    // Read as JSON, field by field: the entrypoint and its arguments exactly.
    let fields = python(
        "import json, sys; c = json.load(sys.stdin); k = c['config']\n\
         print(c['architecture'], c['os'], json.dumps(k['Entrypoint']), json.dumps(k['Cmd']))",
        &config,
    );
    assert_eq!(
        fields.trim(),
        "wasm wasi [\"/poll_http_server.wasm\"] [\"0.0.0.0:8080\"]",
        "{config}"
    );
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
        Command::new("tar").arg("-tvzf").arg(&layer).output_within(),
        "tar -t",
    );
    // `mode owner size date time name` a line; the name is last.
    let mut entries: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|line| {
            Some((
                line.split_whitespace().next()?,
                line.split_whitespace().last()?,
            ))
        })
        .collect();
    entries.sort_by_key(|&(_, name)| name);
    let names: Vec<&str> = entries.iter().map(|&(_, name)| name).collect();
    assert_eq!(names, [".", "poll_http_server.wasm"], "{listing}");
    // crun before 1.7 runs only an executable entrypoint.
    assert!(entries[1].0.starts_with("-rwx"), "{listing}");
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
    // Reproducible: the same bytes in another file, with another time (a
    // module rebuilt), make the same image; SOURCE_DATE_EPOCH sets its
    // times.
    let raw = |layout: &std::path::Path| {
        let image = format!("oci:{}:echo", layout.display());
        let args = ["inspect", "--raw", &image];
        ok(
            Command::new("skopeo").args(args).output_within(),
            "skopeo inspect --raw",
        )
    };
    let again = TempPath(layout.0.with_extension("again"));
    let _ = std::fs::remove_dir_all(&again);
    std::fs::create_dir_all(&again).expect("a directory");
    let copy = again.join("poll_http_server.wasm");
    std::fs::copy(&module, &copy).expect("a copy of the module");
    let earlier = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
    let file = std::fs::File::options()
        .write(true)
        .open(&copy)
        .expect("the copy");
    file.set_modified(earlier).expect("its time set");
    build(&again.join("oci"), &copy, None);
    assert_eq!(raw(&again.join("oci")), manifest, "a second build differs");
    let dated = TempPath(layout.0.with_extension("dated"));
    let _ = std::fs::remove_dir_all(&dated);
    build(&dated, &module, Some("1"));
    let image = format!("oci:{}:echo", dated.display());
    let args = ["inspect", "--config", &image];
    let config = ok(Command::new("skopeo").args(args).output_within(), "skopeo");
    let times = python(
        "import json, sys; c = json.load(sys.stdin)\n\
         print(c['created'], *sorted({h['created'] for h in c['history']}))",
        &config,
    );
    assert_eq!(
        times.trim(),
        "1970-01-01T00:00:01Z 1970-01-01T00:00:01Z",
        "{config}"
    );
}

#[test]
fn the_kubernetes_manifests_pass_the_schemas_and_a_broken_one_does_not() {
    let install = "python3 -m pip install kubernetes-validate";
    // Named to apply in order: the RuntimeClass before the pods that name it.
    let manifests: Vec<_> = ["00-runtimeclass", "10-deployment", "20-service"]
        .iter()
        .map(|m| root().join(format!("deploy/k8s/{m}.yaml")))
        .collect();
    let out = tool("kubernetes-validate", install)
        .arg("--strict")
        .args(&manifests)
        .output_within();
    let said = ok(out, "kubernetes-validate");
    assert_eq!(said.matches(" passed ").count(), 3, "{said}");
    // The validator really checks, strictly: the deployment with a wrong
    // type fails, and so does one with a field no schema has.
    let good = std::fs::read_to_string(&manifests[1]).expect("10-deployment.yaml");
    let broken = std::env::temp_dir().join(format!("edgepoll-broken-{}.yaml", std::process::id()));
    for (what, copy, named) in [
        (
            "replicas: three",
            good.replace("replicas: 3", "replicas: three"),
            "spec.replicas",
        ),
        (
            "an unknown field",
            good.replace("replicas: 3", "replicas: 3\n  replicaz: 3"),
            "replicaz",
        ),
    ] {
        std::fs::write(&broken, copy).expect("write");
        let out = tool("kubernetes-validate", install)
            .arg("--strict")
            .arg(&broken)
            .output_within();
        assert!(!out.status.success(), "a deployment with {what} passed");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains(named), "{what}: {said}");
    }
    let _ = std::fs::remove_file(&broken);
    // And the three agree with each other and with the image: the pods
    // name the RuntimeClass and carry crun's annotation, the Service finds
    // them and their port, and they listen where the image's arguments say.
    let all: String = manifests
        .iter()
        .map(|m| std::fs::read_to_string(m).expect("a manifest") + "\n---\n")
        .collect();
    let agreed = python(
        "import sys, yaml\n\
         docs = {d['kind']: d for d in yaml.safe_load_all(sys.stdin) if d}\n\
         rc, dep, svc = docs['RuntimeClass'], docs['Deployment'], docs['Service']\n\
         pod = dep['spec']['template']\n\
         c = pod['spec']['containers'][0]\n\
         ports = {p['name']: p['containerPort'] for p in c['ports']}\n\
         labels = pod['metadata']['labels']\n\
         checks = [\n\
           pod['spec']['runtimeClassName'] == rc['metadata']['name'],\n\
           pod['metadata']['annotations']['module.wasm.image/variant'] == 'compat-smart',\n\
           all(labels.get(k) == v for k, v in svc['spec']['selector'].items()),\n\
           dep['spec']['selector']['matchLabels'].items() <= labels.items(),\n\
           all(p['targetPort'] in ports or p['targetPort'] in ports.values() for p in svc['spec']['ports']),\n\
           c['args'] == ['0.0.0.0:%d' % ports['http']],\n\
           all(c[p]['httpGet']['port'] in ports or c[p]['httpGet']['port'] in ports.values() for p in ('readinessProbe', 'livenessProbe')),\n\
         ]\n\
         print(' '.join(str(x) for x in checks))",
        &all,
    );
    assert_eq!(
        agreed.trim(),
        "True True True True True True True",
        "runtimeClass, annotation, Service selector, Deployment selector, targetPort, args, probe port"
    );
}
