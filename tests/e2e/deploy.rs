//! deploy/ parses as HCL2 and declares the AWS set-up: the store, the fleet and its
//! image (scripts/check_deploy.py).

use crate::support::root;

#[test]
fn terraform_file_declares_the_aws_set_up() {
    let python = std::env::var("TDEV_PYTHON")
        .expect("TDEV_PYTHON is not set: run the tests through scripts/test.sh");
    let out = std::process::Command::new(python)
        .arg(root().join("scripts/check_deploy.py"))
        .arg(root().join("deploy"))
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("0 failed"), "{text}");
}
