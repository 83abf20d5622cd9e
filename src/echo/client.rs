//! The echo client: send a message, get the same bytes back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::client::{ClientError, Timeouts};
use crate::net::{self, MAX_UDP_PAYLOAD, Target, Transport, UDP_RECV_BUFFER};

/// A connection to an echo server over TCP or UDP.
#[derive(Debug)]
pub struct EchoClient {
    conn: Conn,
    peer: SocketAddr,
    timeouts: Timeouts,
}

#[derive(Debug)]
enum Conn {
    /// `buffered` holds bytes read but not yet returned as a reply.
    Tcp {
        stream: TcpStream,
        buffered: BytesMut,
    },
    Udp(UdpSocket),
}

impl EchoClient {
    /// Connects to `target` (port [`super::DEFAULT_PORT`] when it names none).
    ///
    /// # Errors
    /// When the name does not resolve or the TCP connection fails.
    pub async fn connect(
        target: &Target,
        transport: Transport,
        timeouts: Timeouts,
    ) -> Result<Self, ClientError> {
        let addrs = target.resolve(super::DEFAULT_PORT).await?;
        let conn = match transport {
            Transport::Tcp => Conn::Tcp {
                stream: net::connect_tcp(&addrs, timeouts.connect).await?,
                buffered: BytesMut::with_capacity(super::TCP_BUFFER),
            },
            Transport::Udp => Conn::Udp(net::connect_udp(&addrs).await?),
        };
        let peer = match &conn {
            Conn::Tcp { stream, .. } => stream.peer_addr(),
            Conn::Udp(s) => s.peer_addr(),
        }
        .map_err(|e| ClientError::Io { addr: addrs[0], error: e })?;
        Ok(EchoClient { conn, peer, timeouts })
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// TCP or UDP.
    pub fn transport(&self) -> Transport {
        match self.conn {
            Conn::Tcp { .. } => Transport::Tcp,
            Conn::Udp(_) => Transport::Udp,
        }
    }

    /// Sends `message` and returns the reply: over TCP exactly as many bytes as
    /// were sent, over UDP the one datagram that comes back.
    ///
    /// # Errors
    /// As [`EchoClient::send`] and [`EchoClient::receive`], waiting the reply
    /// timeout.
    pub async fn exchange(&mut self, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.send(message).await?;
        self.receive(message.len(), self.timeouts.reply).await
    }

    /// Sends `message`: over TCP as bytes on the stream, over UDP as one datagram.
    ///
    /// # Errors
    /// [`ClientError::TooLarge`] for a UDP message over [`MAX_UDP_PAYLOAD`], and
    /// socket errors.
    pub async fn send(&mut self, message: &[u8]) -> Result<(), ClientError> {
        let addr = self.peer;
        match &mut self.conn {
            Conn::Tcp { stream, .. } => stream.write_all(message).await,
            Conn::Udp(_) if message.len() > MAX_UDP_PAYLOAD => {
                return Err(ClientError::TooLarge { len: message.len(), max: MAX_UDP_PAYLOAD });
            }
            Conn::Udp(socket) => socket.send(message).await.map(drop),
        }
        .map_err(|e| ClientError::io(addr, e))
    }

    /// Waits up to `timeout` for the next reply: over TCP the next `len` bytes
    /// of the stream, over UDP the next datagram (whatever its length).
    ///
    /// Cancel-safe over TCP: bytes that arrive before a timeout are kept for
    /// the next call, so a late reply never shifts the ones after it.
    ///
    /// # Errors
    /// [`ClientError::Timeout`], [`ClientError::Closed`] on an early EOF, and
    /// socket errors (a refusal as [`crate::net::ConnectError::Refused`]).
    pub async fn receive(&mut self, len: usize, timeout: Duration) -> Result<Vec<u8>, ClientError> {
        let addr = self.peer;
        let timed_out = |_| ClientError::Timeout { addr, after: timeout };
        match &mut self.conn {
            Conn::Tcp { stream, buffered } => {
                let fill = async {
                    while buffered.len() < len {
                        if stream.read_buf(buffered).await.map_err(|e| ClientError::io(addr, e))? == 0 {
                            return Err(ClientError::Closed { addr, got: buffered.len(), expected: len });
                        }
                    }
                    Ok(buffered.split_to(len).to_vec())
                };
                tokio::time::timeout(timeout, fill).await.map_err(timed_out)?
            }
            Conn::Udp(socket) => {
                let mut reply = vec![0; UDP_RECV_BUFFER];
                let received =
                    tokio::time::timeout(timeout, socket.recv(&mut reply)).await.map_err(timed_out)?;
                reply.truncate(received.map_err(|e| ClientError::io(addr, e))?);
                Ok(reply)
            }
        }
    }

    /// What else the server sends within `wait`, up to `limit` bytes: over
    /// TCP the bytes already read past the last reply and what arrives until
    /// the server closes; over UDP nothing (a datagram comes whole). For
    /// showing what a server that is not an echo server said.
    pub async fn read_more(&mut self, limit: usize, wait: Duration) -> Vec<u8> {
        let Conn::Tcp { stream, buffered } = &mut self.conn else { return Vec::new() };
        let more = async {
            while buffered.len() < limit {
                match stream.read_buf(buffered).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(wait, more).await;
        let mut rest = buffered.split().to_vec();
        rest.truncate(limit);
        rest
    }

    /// Relays bytes unchanged, like netcat. Over TCP, `input` is copied to
    /// the server and the server's bytes to `output`; the end of `input`
    /// closes the sending side, and the relay ends when the server closes.
    /// Over UDP, `input` goes out in datagrams of up to [`MAX_UDP_PAYLOAD`]
    /// bytes, each answered before the next. Returns the bytes written to
    /// `output`.
    ///
    /// # Errors
    /// As [`EchoClient::exchange`]. Over TCP the reply timeout starts once
    /// `input` has ended, so an interactive user may type at their own pace.
    pub async fn relay<R, W>(mut self, mut input: R, mut output: W) -> Result<u64, ClientError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let addr = self.peer;
        let reply_timeout = self.timeouts.reply;
        let local_io = |e| ClientError::Io { addr, error: e };
        let Conn::Tcp { stream, buffered } = &mut self.conn else {
            let mut total = 0;
            loop {
                let mut datagram = Vec::with_capacity(MAX_UDP_PAYLOAD);
                (&mut input)
                    .take(MAX_UDP_PAYLOAD as u64)
                    .read_to_end(&mut datagram)
                    .await
                    .map_err(local_io)?;
                if datagram.is_empty() {
                    output.flush().await.map_err(local_io)?;
                    return Ok(total);
                }
                let reply = self.exchange(&datagram).await?;
                output.write_all(&reply).await.map_err(local_io)?;
                total += reply.len() as u64;
            }
        };
        let (mut from_server, mut to_server) = stream.split();
        let input_done = AtomicBool::new(false);
        let send = async {
            tokio::io::copy(&mut input, &mut to_server).await.map_err(local_io)?;
            input_done.store(true, Ordering::Relaxed);
            to_server.shutdown().await.map_err(|e| ClientError::io(addr, e))
        };
        let receive = async {
            let mut buf = vec![0u8; super::TCP_BUFFER];
            output.write_all(buffered).await.map_err(local_io)?;
            let mut total = buffered.len() as u64;
            loop {
                let read = match tokio::time::timeout(reply_timeout, from_server.read(&mut buf)).await {
                    Ok(read) => read.map_err(|e| ClientError::io(addr, e))?,
                    Err(_) if !input_done.load(Ordering::Relaxed) => continue,
                    Err(_) => {
                        return Err(ClientError::Timeout { addr, after: reply_timeout });
                    }
                };
                if read == 0 {
                    output.flush().await.map_err(local_io)?;
                    return Ok(total);
                }
                output.write_all(&buf[..read]).await.map_err(local_io)?;
                total += read as u64;
            }
        };
        let (mut send, mut receive) = (std::pin::pin!(send), std::pin::pin!(receive));
        // The server closing ends the relay, whether the input has ended or not.
        tokio::select! {
            sent = &mut send => {
                sent?;
                receive.await
            }
            received = &mut receive => received,
        }
    }
}
