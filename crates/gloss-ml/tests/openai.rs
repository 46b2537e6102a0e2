//! The OpenAI-compatible teacher against a real HTTP server on loopback: a tiny
//! `std::net::TcpListener` server that checks each request and answers canned completions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gloss_ml::{Error, OpenAiConfig, OpenAiTeacher};
use serde_json::{json, Value};

/// What the fake server does with one request: status, body and a delay before answering.
type Handler = dyn Fn(&Value, &[String]) -> (u16, String, Duration) + Send + Sync;

/// Serves on 127.0.0.1:0, one thread per connection, for the life of the test process.
/// Returns the base URL and the most connections seen at once.
fn serve(handler: Arc<Handler>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let peak_out = Arc::clone(&peak);
    std::thread::spawn(move || {
        // Bounded: no test here makes more than 64 requests.
        for stream in listener.incoming().take(64) {
            let Ok(stream) = stream else { continue };
            let (handler, active, peak) = (handler.clone(), active.clone(), peak.clone());
            std::thread::spawn(move || {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                handle(stream, &*handler);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, peak_out)
}

fn handle(stream: TcpStream, handler: &Handler) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    assert_eq!(head[0], "POST /v1/chat/completions HTTP/1.1", "{head:?}");
    let length: usize = head
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let request: Value = serde_json::from_slice(&body).expect("request body is JSON");
    let (status, answer, delay) = handler(&request, &head);
    std::thread::sleep(delay);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{answer}",
        answer.len()
    );
}

fn completion(content: &str) -> String {
    json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
        .to_string()
}

fn ok(content: &str) -> (u16, String, Duration) {
    (200, completion(content), Duration::ZERO)
}

/// Checks the request shape every test expects.
fn check_request(request: &Value) {
    assert_eq!(request["model"], "tiny-chat", "{request}");
    assert_eq!(request["temperature"], 0.0, "{request}");
    assert!(request["max_tokens"].as_u64().unwrap() >= 1, "{request}");
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(messages.last().unwrap()["role"], "user", "{request}");
    assert!(messages.iter().all(|m| m["content"]
        .as_str()
        .is_some_and(|c| c.contains("Text: ") || m["role"] == "system")));
}

fn teacher(url: &str, timeout: Duration) -> OpenAiTeacher {
    let mut config = OpenAiConfig::new(url, "tiny-chat");
    config.timeout = timeout;
    config.api_key = Some("sk-test".into());
    OpenAiTeacher::new(config).unwrap()
}

const SENTIMENT: &[&str] = &["positive", "negative"];

#[test]
fn classifies_and_extracts_against_a_loopback_server() {
    let (url, _) = serve(Arc::new(|request: &Value, head: &[String]| {
        check_request(request);
        assert!(
            head.iter()
                .any(|h| h.eq_ignore_ascii_case("authorization: Bearer sk-test")),
            "{head:?}"
        );
        let messages = request["messages"].as_array().unwrap();
        let user = messages.last().unwrap()["content"].as_str().unwrap();
        if user.contains("JSON list") {
            assert_eq!(messages.len(), 1, "extraction has no system turn");
            ok(
                r#"[{"text": "Marie Curie", "label": "PERSON"}, {"text": "Paris", "label": "LOCATION"}]"#,
            )
        } else {
            assert_eq!(messages[0]["role"], "system");
            assert!(user.contains("positive or negative"), "{user}");
            ok(if user.contains("loved") {
                "Positive."
            } else {
                "the answer is: NEGATIVE"
            })
        }
    }));
    let t = teacher(&url, Duration::from_secs(10));
    let p = t.classify("I loved it", SENTIMENT).unwrap();
    assert_eq!((p.label.as_str(), p.confidence), ("positive", 1.0));
    let p = t.classify("Dull.", SENTIMENT).unwrap();
    assert_eq!(p.label, "negative");

    let text = "Marie Curie worked in Paris.";
    let entities = t.extract_entities(text, &["PERSON", "LOCATION"]).unwrap();
    let spans: Vec<(usize, usize, &str)> = entities
        .iter()
        .map(|e| (e.start, e.end, e.label.as_str()))
        .collect();
    assert_eq!(spans, [(0, 11, "PERSON"), (22, 27, "LOCATION")]);
    assert!(entities.iter().all(|e| e.confidence == 1.0));
}

#[test]
fn logprobs_become_confidences() {
    let (url, _) = serve(Arc::new(|request: &Value, _: &[String]| {
        check_request(request);
        assert_eq!(request["logprobs"], true);
        let body = json!({"choices": [{"message": {"content": "Positive"}, "logprobs": {"content": [
            {"token": "Pos", "logprob": (0.25f32).ln(), "bytes": [80, 111, 115]},
            {"token": "itive", "logprob": 0.0},
        ]}}]});
        (200, body.to_string(), Duration::ZERO)
    }));
    let mut config = OpenAiConfig::new(url, "tiny-chat");
    config.logprobs = true;
    let p = OpenAiTeacher::new(config)
        .unwrap()
        .classify("x", SENTIMENT)
        .unwrap();
    assert_eq!(p.label, "positive");
    assert!((p.confidence - 0.5).abs() < 1e-5, "{p:?}");
}

#[test]
fn classify_many_keeps_order_and_respects_max_concurrency() {
    let (url, peak) = serve(Arc::new(|request: &Value, _: &[String]| {
        let user = request["messages"][1]["content"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, body, _) = ok(if user.contains("good") {
            "positive"
        } else {
            "negative"
        });
        (status, body, Duration::from_millis(60))
    }));
    let mut config = OpenAiConfig::new(url, "tiny-chat");
    config.max_concurrency = 3;
    let t = OpenAiTeacher::new(config).unwrap();
    let texts = [
        "good", "bad", "good", "bad", "bad", "good", "good", "bad", "good",
    ];
    let got: Vec<String> = t
        .classify_many(&texts, SENTIMENT)
        .into_iter()
        .map(|r| r.unwrap().label)
        .collect();
    let want: Vec<&str> = texts
        .iter()
        .map(|t| if *t == "good" { "positive" } else { "negative" })
        .collect();
    assert_eq!(got, want);
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "{peak} requests in flight at once");
}

#[test]
fn server_errors_timeouts_and_garbage_are_reported_clearly() {
    let (url, _) = serve(Arc::new(|request: &Value, _: &[String]| {
        let user = request["messages"][1]["content"].as_str().unwrap();
        if user.contains("fail") {
            (500, r#"{"error": "model crashed"}"#.into(), Duration::ZERO)
        } else if user.contains("slow") {
            (200, completion("positive"), Duration::from_millis(1500))
        } else if user.contains("garbage") {
            (200, "<html>not json".into(), Duration::ZERO)
        } else if user.contains("empty") {
            (200, r#"{"choices": []}"#.into(), Duration::ZERO)
        } else {
            ok("I cannot say.")
        }
    }));
    let t = teacher(&url, Duration::from_millis(300));
    let endpoint = format!("{url}/v1/chat/completions");

    let err = t.classify("fail", SENTIMENT).unwrap_err();
    assert!(
        matches!(&err, Error::HttpStatus { status: 500, url, body } if *url == endpoint && body.contains("model crashed")),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 500"), "{err}");

    let started = std::time::Instant::now();
    let err = t.classify("slow", SENTIMENT).unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { url, .. } if *url == endpoint),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );

    let err = t.classify("garbage", SENTIMENT).unwrap_err();
    assert!(
        matches!(&err, Error::BadResponse { url, .. } if *url == endpoint),
        "{err:?}"
    );
    let err = t.classify("empty", SENTIMENT).unwrap_err();
    assert!(err.to_string().contains("no choices"), "{err}");

    let err = t.classify("unsure", SENTIMENT).unwrap_err();
    assert!(
        matches!(&err, Error::NoLabel { answer, .. } if answer == "I cannot say."),
        "{err:?}"
    );
    assert!(!format!("{err:?} {err}").contains("sk-test"));

    // Nothing listens on a port we just closed: a transport error naming the URL.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = teacher(&format!("http://{closed}"), Duration::from_secs(2))
        .classify("x", SENTIMENT)
        .unwrap_err();
    assert!(
        matches!(err, Error::Transport { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
}
