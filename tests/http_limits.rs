//! Request limits of docs/deployment.md "Security" against the real server, spoken over raw TCP so the test controls
//! every byte: heads over 16 KiB get `431`, a head must arrive within the header read timeout (which
//! also bounds a WebSocket handshake), and a keep-alive connection may idle between requests for longer
//! than that.
//!
//! The timeouts are shortened through the non-flag `ServeArgs` fields. Nothing asserts wall-clock
//! latency: a test only waits, with a generous bound, for the server to close or answer.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ui_gateway::gateway::RunningGateway;

async fn short_header_timeout() -> RunningGateway {
    let mut a = args();
    a.http_header_timeout = Duration::from_millis(500);
    start(a).await
}

/// Reads one response head (the tests' responses have small bodies that arrive with it).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(STEP, stream.read(&mut buf)).await.expect("an answer").unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Waits until the server has closed the connection (end-of-stream or reset), discarding any bytes.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection");
}

fn head_with_padding(path: &str, padding: usize) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n", "a".repeat(padding))
}

#[tokio::test]
async fn heads_over_16_kib_get_431_and_the_server_keeps_serving() {
    let gw = start(args()).await;
    // 15 KiB of headers are fine.
    let mut ok = TcpStream::connect(gw.addr).await.unwrap();
    ok.write_all(head_with_padding("/healthz", 15 * 1024).as_bytes()).await.unwrap();
    assert!(read_response(&mut ok).await.starts_with("HTTP/1.1 200"));

    // 17 KiB are not; the connection ends after the answer.
    let mut big = TcpStream::connect(gw.addr).await.unwrap();
    big.write_all(head_with_padding("/healthz", 17 * 1024).as_bytes()).await.unwrap();
    let answer = read_response(&mut big).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "got {answer:?}");
    closed_by_server(&mut big).await;

    // The same for a WebSocket upgrade, and many small headers adding up.
    let id = new_session(&gw).await;
    let mut upgrade = TcpStream::connect(gw.addr).await.unwrap();
    let many: String = (0..400).map(|i| format!("X-H{i}: {}\r\n", "b".repeat(40))).collect();
    let head = format!(
        "GET /ws/{id} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{many}\r\n"
    );
    upgrade.write_all(head.as_bytes()).await.unwrap();
    assert!(read_response(&mut upgrade).await.starts_with("HTTP/1.1 431"));

    // Ordinary requests and WebSockets still work.
    assert_eq!(http().get(format!("http://{}/healthz", gw.addr)).send().await.unwrap().status(), 200);
    connect(&gw, &id, None).await.expect("the WebSocket opens");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let gw = short_header_timeout().await;
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    closed_by_server(&mut silent).await;
}

#[tokio::test]
async fn a_dribbled_head_is_cut_at_the_header_timeout_however_steady_the_bytes() {
    let gw = short_header_timeout().await;
    let id = new_session(&gw).await;
    for start_line in ["GET /healthz HTTP/1.1\r\n".to_string(), format!("GET /ws/{id} HTTP/1.1\r\n")] {
        let stream = TcpStream::connect(gw.addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        // A header line every 100 ms, for ever: each byte is well inside any per-read limit, but the
        // head never ends. An upgrade request dribbled the same way is a handshake that never ends.
        let dribble = tokio::spawn(async move {
            writer.write_all(start_line.as_bytes()).await?;
            for i in 0.. {
                tokio::time::sleep(Duration::from_millis(100)).await;
                writer.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).await?;
            }
            Ok::<_, std::io::Error>(())
        });
        let mut buf = [0u8; 1024];
        let ended = tokio::time::timeout(Duration::from_secs(30), reader.read(&mut buf)).await;
        assert!(matches!(ended, Ok(Ok(0)) | Ok(Err(_))), "the server ends the connection without an answer");
        dribble.abort();
    }
    // The session is untouched: a real handshake still works.
    connect(&gw, &id, None).await.expect("the WebSocket opens");
}

#[tokio::test]
async fn keep_alive_connections_may_idle_longer_than_the_header_timeout() {
    let gw = short_header_timeout().await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    stream.write_all(request).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Four header timeouts of silence between requests: the idle limit (60 s) governs that.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stream.write_all(request).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"), "same connection, answered");
}
