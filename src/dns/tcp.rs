//! TCP through hickory-server: it owns connections, framing and idle
//! timeouts; we supply the answers, from the same code as UDP. A zone
//! transfer is several messages sent in order on the connection, each
//! TSIG-signed over the previous one when the request was signed.

use hickory_proto::op::{Header, HeaderCounts, Message, ResponseCode};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};

use super::answer;
use super::options::ServerOptions;
use super::request::{self, Peer, Reply, Transport};
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::snapshot::SnapshotCell;
use crate::xfr::tsig::Signer;

pub struct TcpHandler {
    cell: SnapshotCell,
    metrics: Arc<Metrics>,
    opts: Arc<ServerOptions>,
}

impl TcpHandler {
    pub fn new(cell: SnapshotCell, metrics: Arc<Metrics>, opts: Arc<ServerOptions>) -> Self {
        TcpHandler {
            cell,
            metrics,
            opts,
        }
    }
}

/// hickory's response for `message`, to `request`.
fn build<'q, 'a>(
    request: &'q Request,
    message: &'a Message,
) -> MessageResponse<
    'q,
    'a,
    impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
    impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
    impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
    impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
>
where
    'a: 'q,
{
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = &message.edns {
        builder.edns(edns);
    }
    builder.build(
        message.metadata,
        message.answers.iter(),
        message.authorities.iter(),
        std::iter::empty(),
        message.additionals.iter(),
    )
}

/// Sends one message, with a TSIG computed over exactly the bytes hickory
/// will send (the same response encoded once more without the TSIG).
async fn send<R: ResponseHandler>(
    handle: &mut R,
    request: &Request,
    message: &Message,
    signer: Option<&mut Signer>,
) -> Option<ResponseInfo> {
    let mut response = build(request, message);
    if let Some(signer) = signer {
        let mut unsigned = Vec::with_capacity(4096);
        let mut encoder = BinEncoder::new(&mut unsigned);
        build(request, message)
            .destructive_emit(&mut encoder)
            .ok()?;
        response.set_signature(signer.sign(&unsigned, crate::state::unix_now()));
    }
    match handle.send_response(response).await {
        Ok(info) => Some(info),
        Err(e) => {
            tracing::debug!(error = %e, "tcp send failed");
            None
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let not_sent = || {
            ResponseInfo::from(Header {
                metadata: request.metadata,
                counts: HeaderCounts::default(),
            })
        };
        let message = match Message::from_vec(request.as_slice()) {
            Ok(m) => m,
            Err(_) if request.metadata.message_type == hickory_proto::op::MessageType::Query => {
                let builder = MessageResponseBuilder::from_message_request(request);
                let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
                return response_handle
                    .send_response(msg)
                    .await
                    .unwrap_or_else(|_| not_sent());
            }
            Err(_) => return not_sent(),
        };
        let peer = Peer {
            ip: request.src().ip(),
            transport: Transport::Tcp,
        };
        let reply = {
            let snap = self.cell.load_full();
            let reply = request::handle(
                &snap,
                &message,
                request.as_slice(),
                &peer,
                &self.metrics,
                &self.opts,
                crate::state::unix_now(),
            );
            if let Some(Reply { messages, .. }) = &reply
                && let [only] = messages.as_slice()
            {
                answer::count_alias_answer(&snap, &message, only);
            }
            reply
        };
        let Some(Reply {
            messages,
            mut signer,
        }) = reply
        else {
            return not_sent();
        };
        let mut first = None;
        for (i, m) in messages.iter().enumerate() {
            let Some(info) = send(&mut response_handle, request, m, signer.as_mut()).await else {
                if i > 0 {
                    crate::packet_log!(warn, peer = %peer.ip, sent = i, of = messages.len(), "zone transfer cut short: the peer left, or the zone is over the transfer size limit");
                }
                break;
            };
            first.get_or_insert(info);
        }
        if let Some(m) = messages.first() {
            self.metrics.response(true, m.metadata.response_code.low());
        }
        first.unwrap_or_else(not_sent)
    }
}
