//! WebSocket connections to a session: the handshake with the token and the subprotocol, and a
//! refusal as the server's message (its status set), told apart from a server out of reach
//! (no status), which is worth trying again.

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Client, ClientError, escape};
use crate::protocol::RAW_SUBPROTOCOL;

/// An open WebSocket.
pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

impl Client {
    /// The handshake for `path` (and its query) on the server's WebSocket: the token as a
    /// bearer header, and `subprotocol` offered when given.
    pub fn ws_request(
        &self,
        path: &str,
        subprotocol: Option<&str>,
    ) -> Result<Request, ClientError> {
        let url = self
            .url(path)
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        let invalid = |e: &dyn std::fmt::Display| ClientError {
            status: None,
            message: format!("{url}: {e}"),
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| invalid(&e))?;
        let headers = request.headers_mut();
        let bearer =
            HeaderValue::from_str(&format!("Bearer {}", self.token)).map_err(|e| invalid(&e))?;
        headers.insert("authorization", bearer);
        if let Some(subprotocol) = subprotocol {
            let offered = HeaderValue::from_str(subprotocol).map_err(|e| invalid(&e))?;
            headers.insert("sec-websocket-protocol", offered);
        }
        Ok(request)
    }

    /// Opens `request` (see `ws_request`).
    pub async fn ws_open(&self, request: Request) -> Result<Socket, ClientError> {
        use tokio_tungstenite::tungstenite::Error;
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(socket),
            Err(Error::Http(response)) => Err(ClientError::refused(
                response.status(),
                response.body().as_deref().unwrap_or_default(),
            )),
            Err(err) => Err(self.unreachable(err)),
        }
    }

    /// Session `id`'s output and input in the raw protocol, resuming after byte `since` when
    /// given.
    pub async fn raw_ws(&self, id: &str, since: Option<u64>) -> Result<Socket, ClientError> {
        let since = since.map(|n| format!("?since={n}")).unwrap_or_default();
        let path = format!("/sessions/{}/ws{since}", escape(id));
        self.ws_open(self.ws_request(&path, Some(RAW_SUBPROTOCOL))?)
            .await
    }
}
