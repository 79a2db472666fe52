//! `kn serve` as a process: it stops on Ctrl-C even while a client holds a job's
//! event stream open and the model is busy with that job.

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn request(port: u16, method: &str, path: &str, body: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

#[test]
fn ctrl_c_stops_the_server_with_an_event_stream_open() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_kn"))
        .args([
            "serve",
            "--port",
            "0",
            "--device",
            "cpu",
            "--max-steps",
            "10000",
        ])
        .args(["--max-work", "1000000000", "--model"])
        .arg(fixture("tiny-llama"))
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    // A long job, and its event stream held open.
    let prompts: Vec<String> = (0..50)
        .map(|i| format!("The capital of France{} is [MASK].", " truly".repeat(i % 9)))
        .collect();
    let body =
        serde_json::json!({"target": "Paris", "prompts": prompts, "steps": 5000}).to_string();
    let mut s = request(port, "POST", "/api/jobs/analyze", &body);
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let id = answer
        .split("\"id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let mut events = request(port, "GET", &format!("/api/jobs/{id}/events"), "");
    let n = events.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("text/event-stream"));

    let stop = Instant::now();
    Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    // A liveness bound, not a benchmark: the server gives open connections
    // 3 s, then stops anyway.
    loop {
        if server.try_wait().unwrap().is_some() {
            break;
        }
        if stop.elapsed() > Duration::from_secs(60) {
            server.kill().unwrap();
            panic!("kn serve was still running 60 s after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("stopped {:.2} s after Ctrl-C", stop.elapsed().as_secs_f64());
}
