//! A loopback peer is mapped to its process through /proc, and a server refuses
//! connections from processes its check names (commands Keel runs).

use std::sync::Arc;

use keel_dashboard::{Local, Options, PeerCheck, Server, peer};
use keel_engine::Keel;
use keel_storage::MemoryStore;

#[tokio::test]
async fn a_loopback_connection_maps_to_the_process_that_opened_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _client = std::net::TcpStream::connect(addr).unwrap();
    let (_accepted, peer_addr) = listener.accept().unwrap();
    assert_eq!(
        peer::pid_of(peer_addr, addr).unwrap(),
        Some(std::process::id())
    );

    // A child process's connection maps to the child, which descends from us.
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/127.0.0.1/{}; read -r line <&3",
            addr.port()
        ))
        .spawn()
        .unwrap();
    let (accepted, child_addr) = listener.accept().unwrap();
    let pid = peer::pid_of(child_addr, addr).unwrap();
    assert_eq!(pid, Some(child.id()));
    assert!(peer::descends_from(child.id(), std::process::id()));
    drop(accepted);
    child.wait().unwrap();

    // An address nobody holds maps to nobody.
    assert_eq!(
        peer::pid_of("127.0.0.1:1".parse().unwrap(), addr).unwrap(),
        None
    );
}

#[tokio::test]
async fn a_server_refuses_a_command_keel_runs_even_with_the_token() {
    let me = std::process::id();
    let check: PeerCheck = Arc::new(move |pid| pid != me && peer::descends_from(pid, me));
    let mut options = Options::new("127.0.0.1:0".parse().unwrap());
    options.peer_check = Some(check);
    let server = Server::start(Local::new(Keel::new(MemoryStore::new()), []), options)
        .await
        .unwrap();
    let url = format!("http://{}/api/agents", server.addr());
    let auth = format!("Authorization: Bearer {}", server.token());

    // A child of this process (as a command Keel runs is a child of Keel) holding
    // the token: refused.
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-H", &auth, &url])
        .output()
        .await
        .expect("curl is needed for this test (apt-get install -y curl)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n403"), "{text}");
    assert!(text.contains("a command Keel runs"), "{text}");

    // This process itself, with the same token: served.
    let host = server.addr().to_string();
    let bearer = format!("Bearer {}", server.token());
    let r = crate::support::send(
        server.addr(),
        "GET",
        "/api/agents",
        &[("host", &host), ("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop().await;
}
