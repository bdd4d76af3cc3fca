//! Webhooks (`MONKEYPROOF_WEBHOOK`): each notice is POSTed to every configured URL — as JSON, or,
//! for a URL written `ntfy+https://…`, in ntfy's form (plain text body, `Title` and `Priority`
//! headers) to the URL without the `ntfy+`, so phones get a push. Each URL has its own bounded
//! queue and one task that delivers in order, retrying with backoff; a full queue drops the
//! notice (and says so), so nothing ever waits for a webhook. URLs are logged without their
//! path, query or credentials, which often hold secrets.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

/// Notices waiting per URL, at most.
pub const QUEUE: usize = 256;
/// Tries per notice.
const ATTEMPTS: u32 = 5;
/// Wait before the first retry; doubled each time.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// What to tell.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The JSON body.
    pub json: Value,
    /// The ntfy form's title and text.
    pub title: String,
    pub text: String,
    /// Worth interrupting someone (ntfy's priority 4 rather than 3).
    pub urgent: bool,
}

/// Where notices go.
#[derive(Debug, Clone)]
enum Form {
    Json,
    Ntfy,
}

/// The configured webhooks.
pub struct Webhooks {
    queues: Vec<(String, mpsc::Sender<Notice>)>,
}

impl Webhooks {
    /// Starts one delivery task per URL (on the current runtime). `Err` names a URL that is not
    /// `http(s)://` or `ntfy+http(s)://`.
    pub fn start(urls: &[String]) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let mut queues = Vec::new();
        for url in urls.iter().map(|u| u.trim()).filter(|u| !u.is_empty()) {
            let (form, target) = match url.strip_prefix("ntfy+") {
                Some(target) => (Form::Ntfy, target),
                None => (Form::Json, url),
            };
            let parsed = reqwest::Url::parse(target)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .ok_or_else(|| {
                    format!(
                        "MONKEYPROOF_WEBHOOK: {} is not an http(s):// or ntfy+http(s):// URL",
                        shown(url)
                    )
                })?;
            let (tx, rx) = mpsc::channel(QUEUE);
            let name = shown(url);
            tracing::info!(webhook = %name, "webhook configured");
            tokio::spawn(deliver(client.clone(), form, parsed, name.clone(), rx));
            queues.push((name, tx));
        }
        Ok(Self { queues })
    }

    /// Queues `notice` for every URL, without waiting.
    pub fn notify(&self, notice: &Notice) {
        for (name, queue) in &self.queues {
            if queue.try_send(notice.clone()).is_err() {
                tracing::warn!(webhook = %name, "webhook queue full: a notice was dropped");
            }
        }
    }
}

/// Delivers the notices of one URL in order, each tried `ATTEMPTS` times.
async fn deliver(
    client: reqwest::Client,
    form: Form,
    url: reqwest::Url,
    name: String,
    mut notices: mpsc::Receiver<Notice>,
) {
    while let Some(notice) = notices.recv().await {
        let mut wait = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let request = match form {
                Form::Json => client.post(url.clone()).json(&notice.json),
                Form::Ntfy => client
                    .post(url.clone())
                    .header("Title", header_text(&notice.title))
                    .header("Priority", if notice.urgent { "4" } else { "3" })
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .body(notice.text.clone()),
            };
            let failure = match request.send().await {
                Ok(res) if res.status().is_success() => break,
                Ok(res) => format!("HTTP {}", res.status()),
                // Without the URL: reqwest's errors name it in full.
                Err(err) => err.without_url().to_string(),
            };
            if attempt == ATTEMPTS {
                tracing::warn!(webhook = %name, %failure, "webhook failed; notice dropped");
            } else {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// A URL as logs may show it: scheme, host and port only.
pub fn shown(url: &str) -> String {
    let (prefix, rest) = match url.strip_prefix("ntfy+") {
        Some(rest) => ("ntfy+", rest),
        None => ("", url),
    };
    match reqwest::Url::parse(rest) {
        Ok(parsed) if parsed.has_host() => format!(
            "{prefix}{}://{}{}/…",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        _ => "(an unparsable URL)".into(),
    }
}

/// `text` as an HTTP header value may carry it: one line of visible ASCII.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_secrets() {
        assert_eq!(
            shown("https://user:pw@hooks.example.com:8443/T0KEN/abc?key=s3cret"),
            "https://hooks.example.com:8443/…"
        );
        assert_eq!(
            shown("ntfy+https://ntfy.sh/my-secret-topic"),
            "ntfy+https://ntfy.sh/…"
        );
        assert_eq!(shown("not a url/secret"), "(an unparsable URL)");
        assert_eq!(header_text("waiting: ✓ go\nnow"), "waiting: ? go?now");
    }
}
