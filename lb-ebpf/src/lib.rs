//! Sheave's packet path, shared by the XDP programs in `src/bin/`.
//!
//! A packet for the load balancer goes through these modules in order:
//! [`parse`] → (the program's own lookup and scheduling, which own the maps) → [`encap`] →
//! [`transmit`]. The backends' program uses [`decap`]. [`headers`], [`packet`] and [`csum`] are
//! the pieces they share.
#![no_std]

pub mod csum;
pub mod decap;
pub mod encap;
pub mod headers;
pub mod packet;
pub mod parse;
pub mod transmit;
