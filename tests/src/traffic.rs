//! The client-side traffic both the health and the restart scenarios drive through the load
//! balancer, in one place so that both measure with exactly the same instruments: one short
//! `GET /` with its error kind, port and retransmissions ([`http`]), and long-lived echo streams
//! that notice a single lost or misrouted packet ([`echo`]); bulk transfers checked byte for
//! byte ([`bulk`]).
pub mod bulk;
pub mod echo;
pub mod http;
