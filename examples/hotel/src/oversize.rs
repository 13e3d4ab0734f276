//! Refused bodies are read to their end before the answer goes out, up to a cap.
//!
//! hyper closes a connection whose request body was not read to its end, and closing a
//! TCP socket that still holds unread data sends a reset. A client that writes its
//! whole request before reading (Python's `urllib`, a plain socket: no
//! `Expect: 100-continue`) then sees a broken pipe or a reset instead of the 413 (or
//! 415) it was sent. So every place that refuses a body first reads and drops the rest
//! of it; the connection then stays usable for the next request.
//!
//! Bounds: at most [`DRAIN_CAP`] bytes of a body in all, for at most [`DRAIN_TIME`].
//! A body declared larger than the cap is not read at all. Past either bound the answer
//! is sent and the connection closed, as before: such a client may see a reset.
//!
//! `Expect: 100-continue` does not spare the upload: Rocket 0.5 peeks at every body
//! before routing, so hyper has already sent `100 Continue` and the client sends its
//! body; it is drained like any other.

use std::time::Duration;

use rocket::data::{self, ByteUnit, DataStream, FromData, Limits, ToByteUnit};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::tokio::io::{self, AsyncReadExt};
use rocket::{delete, patch, post, put, routes, Data, Request};

/// Requests with a body that no route takes (an unknown path, a method the path does
/// not have): the body is drained, then the usual 404 catcher answers.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Unrouted bodies", |rocket| async {
        rocket.mount(
            "/",
            routes![unrouted_post, unrouted_put, unrouted_patch, unrouted_delete],
        )
    })
}

// Rank 100: after every other route (Rocket's default ranks are -12 to -1).
#[post("/<_..>", data = "<_body>", rank = 100)]
fn unrouted_post(_body: Drained) -> Status {
    Status::NotFound
}

#[put("/<_..>", data = "<_body>", rank = 100)]
fn unrouted_put(_body: Drained) -> Status {
    Status::NotFound
}

#[patch("/<_..>", data = "<_body>", rank = 100)]
fn unrouted_patch(_body: Drained) -> Status {
    Status::NotFound
}

#[delete("/<_..>", data = "<_body>", rank = 100)]
fn unrouted_delete(_body: Drained) -> Status {
    Status::NotFound
}

/// A body read to its end (up to the cap) and dropped.
pub struct Drained;

#[rocket::async_trait]
impl<'r> FromData<'r> for Drained {
    type Error = std::convert::Infallible;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        discard(req, data).await;
        data::Outcome::Success(Drained)
    }
}

/// The most of one refused body that is read and dropped.
pub const DRAIN_CAP: ByteUnit = ByteUnit::Mebibyte(64);

/// The longest the rest of one refused body is read for.
pub const DRAIN_TIME: Duration = Duration::from_secs(30);

/// The body's length as the client declared it (`Content-Length`), if it did.
pub fn declared_length(req: &Request<'_>) -> Option<u64> {
    req.headers()
        .get_one("Content-Length")
        .and_then(|v| v.trim().parse().ok())
}

/// True when the declared length is over `limit`: the body can be refused unread.
pub fn declared_over(req: &Request<'_>, limit: ByteUnit) -> bool {
    declared_length(req).is_some_and(|n| n > limit.as_u64())
}

/// Whether reading the rest is worth it: not for a body declared over the cap.
fn worth_draining(req: &Request<'_>) -> bool {
    !declared_over(req, DRAIN_CAP)
}

/// The limit of a form body: `data-form` for multipart, `form` for urlencoded.
pub fn form_limit(req: &Request<'_>) -> ByteUnit {
    let multipart = req.content_type().is_some_and(|ct| ct.is_form_data());
    let (name, default) = if multipart {
        ("data-form", Limits::DATA_FORM)
    } else {
        ("form", Limits::FORM)
    };
    req.limits().get(name).unwrap_or(default)
}

/// The cap plus one byte, to tell a body of exactly the cap from a longer one.
fn past_cap() -> ByteUnit {
    DRAIN_CAP + 1.bytes()
}

/// Opens a body for reading up to `limit` (and one byte more, to tell an oversized
/// body), able to go on to the drain cap if it has to be refused.
pub fn open<'r>(data: Data<'r>, limit: ByteUnit) -> DataStream<'r> {
    let readable = limit + 1.bytes();
    data.open(if readable > past_cap() {
        readable
    } else {
        past_cap()
    })
}

/// Reads at most `limit + 1` bytes of `stream`: more than `limit` means too large.
pub async fn read_up_to(stream: &mut DataStream<'_>, limit: ByteUnit) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    stream
        .take(limit.as_u64().saturating_add(1))
        .read_to_end(&mut bytes)
        .await?;
    Ok(bytes)
}

/// Reads and drops a refused body that was not opened yet.
pub async fn discard(req: &Request<'_>, data: Data<'_>) {
    if worth_draining(req) {
        drain(data.open(past_cap()), 0).await;
    }
}

/// Reads and drops the rest of a refused body opened with [`open`], of which `read`
/// bytes were read already.
pub async fn discard_rest(req: &Request<'_>, stream: DataStream<'_>, read: usize) {
    if worth_draining(req) {
        drain(stream, read as u64).await;
    }
}

async fn drain(mut stream: DataStream<'_>, read: u64) {
    let copied =
        rocket::tokio::time::timeout(DRAIN_TIME, io::copy(&mut stream, &mut io::sink())).await;
    match copied {
        Ok(Ok(n)) if read + n > DRAIN_CAP.as_u64() => {
            log::warn!("refused body: over {DRAIN_CAP}, not read further; the connection closes")
        }
        Ok(Ok(n)) => log::debug!("refused body: {} bytes read and dropped", read + n),
        Ok(Err(e)) => log::debug!("refused body: reading the rest failed: {e}"),
        Err(_) => {
            log::warn!("refused body: still arriving after {DRAIN_TIME:?}; the connection closes")
        }
    }
}
