//! TCP through hickory-server: it owns connections, framing and idle
//! timeouts; we supply the answers, from the same code as UDP.

use hickory_proto::op::{Header, HeaderCounts, Message, ResponseCode};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::answer;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::snapshot::SnapshotCell;

pub struct TcpHandler {
    cell: SnapshotCell,
    metrics: Arc<Metrics>,
}

impl TcpHandler {
    pub fn new(cell: SnapshotCell, metrics: Arc<Metrics>) -> Self {
        TcpHandler { cell, metrics }
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
        let builder = MessageResponseBuilder::from_message_request(request);
        let response = match Message::from_vec(request.as_slice()) {
            Ok(message) => {
                let snap = self.cell.load_full();
                let response = answer::respond(&snap, &message);
                if let Some(r) = &response {
                    answer::count_alias_answer(&snap, &message, r);
                    self.metrics.response(true, r.metadata.response_code.low());
                }
                response
            }
            Err(_) => None,
        };
        let result = match response {
            Some(r) => {
                let mut builder = builder;
                if let Some(edns) = &r.edns {
                    builder.edns(edns);
                }
                let msg = builder.build(
                    r.metadata,
                    r.answers.iter(),
                    r.authorities.iter(),
                    std::iter::empty(),
                    r.additionals.iter(),
                );
                response_handle.send_response(msg).await
            }
            None if request.metadata.message_type == hickory_proto::op::MessageType::Query => {
                let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
                response_handle.send_response(msg).await
            }
            None => return not_sent(),
        };
        result.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "tcp send failed");
            not_sent()
        })
    }
}
