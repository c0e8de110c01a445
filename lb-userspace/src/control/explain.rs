//! `explain`: which backend a flow goes to and why, through the simulator's one path with the
//! flow table's entry for it (see [`crate::simulate::explain`]).
use super::{ApiError, Control};
use crate::maps::MapStore;
use crate::{
    api::types::{ExplainRequest, ExplainView},
    simulate::{self, TableEntry},
    wire::flow_key,
};

impl<M: MapStore> Control<M> {
    pub(super) fn explain(&self, r: &ExplainRequest) -> Result<ExplainView, ApiError> {
        let key = flow_key(r.protocol, r.source, r.destination)
            .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
        let table = self.maps.flow(&key).map(|entry| TableEntry {
            entry,
            now_tick: self.state.clock.flow_tick(),
        });
        simulate::explain(&self.state, &key, r.describe(), table, false).ok_or_else(|| ApiError {
            status: 404,
            message: format!("{} {} is not a VIP", r.protocol, r.destination),
        })
    }
}
