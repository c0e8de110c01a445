//! Handing out what the data plane indexes by number: backend ids (slots of `BACKENDS`, reused
//! as late as possible) and ring regions (ranges of `RINGS`, a first-fit free list that merges
//! neighbours so large rings fit again after churn).
use std::{collections::BTreeSet, net::IpAddr};

use lb_common::{
    limits::{MAX_BACKENDS, MAX_VIPS},
    vip::VipKey,
};

use super::{BackendHealth, BackendSlot, ErrorKind, State, StateError, err};

impl State {
    /// A VIP id and two ring regions for a new VIP on `address`: the adopted ones if a restarted
    /// daemon finds this VIP in the pinned maps (`adopted`: region 0 is the half packets read
    /// now, so the first publish writes the other), fresh ones otherwise. Refused when the VIP
    /// map is full: it holds an entry per VIP and one per VIP address.
    pub(super) fn alloc_vip(
        &mut self,
        key: &VipKey,
        address: IpAddr,
        ring_size: u32,
    ) -> Result<(u32, [u32; 2], bool), StateError> {
        let addresses: BTreeSet<IpAddr> = self.vips.iter().map(|v| v.spec.address).collect();
        let entries = self.vips.len() + addresses.len();
        let needed = 1 + usize::from(!addresses.contains(&address));
        if entries + needed > MAX_VIPS as usize {
            return err(
                ErrorKind::Capacity,
                format!(
                    "the VIP map is full: {} VIPs on {} addresses use {entries} of its {MAX_VIPS} \
                     entries (one per VIP and one per VIP address), and this VIP needs {needed}",
                    self.vips.len(),
                    addresses.len()
                ),
            );
        }
        let used: BTreeSet<u32> = self.vips.iter().map(|v| v.id).collect();
        let adopted = self.adopted_vip(key, ring_size);
        let fresh = (0..MAX_VIPS).find(|&i| !used.contains(&i) && !self.vip_id_held(i));
        let Some(id) = adopted.map(|(id, _)| id).or(fresh) else {
            return err(
                ErrorKind::Capacity,
                format!("all {MAX_VIPS} VIP ids are in use"),
            );
        };
        let a = match adopted {
            Some((_, base)) => base,
            None => self
                .alloc_slots(ring_size)
                .ok_or_else(|| self.ring_capacity_error(ring_size))?,
        };
        let Some(b) = self.alloc_slots(ring_size) else {
            self.free_range(a, ring_size);
            return Err(self.ring_capacity_error(ring_size));
        };
        Ok((id, [a, b], adopted.is_some()))
    }

    fn ring_capacity_error(&self, size: u32) -> StateError {
        StateError {
            kind: ErrorKind::Capacity,
            message: self.ring_capacity_message(size),
        }
    }

    pub(super) fn ring_capacity_message(&self, size: u32) -> String {
        format!(
            "no room for two more rings of {size} slots (ring table: {} slots; raise \
             dataplane.ring_slots)",
            self.ring_capacity
        )
    }

    pub(super) fn acquire_backend(&mut self, addr: IpAddr) -> Result<u32, StateError> {
        if let Some(id) = self
            .backends
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.address == addr))
        {
            self.backends[id].as_mut().expect("found").refs += 1;
            return Ok(id as u32);
        }
        let n = MAX_BACKENDS;
        let adopted = self.adopted_backend_id(addr);
        let fresh = (0..n).map(|k| (self.next_backend + k) % n).find(|&id| {
            self.backends.get(id as usize).is_none_or(Option::is_none) && !self.backend_id_held(id)
        });
        let Some(id) = adopted.or(fresh) else {
            return err(
                ErrorKind::Capacity,
                format!("all {n} backend slots are in use"),
            );
        };
        if self.backends.len() <= id as usize {
            self.backends.resize(id as usize + 1, None);
        }
        self.backends[id as usize] = Some(BackendSlot {
            address: addr,
            refs: 1,
            disabled: false,
            health: BackendHealth::default(),
            outlier: Default::default(),
        });
        if adopted.is_none() {
            self.next_backend = (id + 1) % n;
        }
        self.pending.backends.insert(id);
        Ok(id)
    }

    pub(super) fn release_backend(&mut self, id: u32) {
        let slot = self.backends[id as usize].as_mut().expect("live backend");
        slot.refs -= 1;
        if slot.refs == 0 {
            self.backends[id as usize] = None;
            self.pending.backends.insert(id);
        }
    }

    /// Take the range [start, start+len) out of the free list (false if not entirely free).
    pub(super) fn reserve_slots(&mut self, start: u32, len: u32) -> bool {
        let end = start as u64 + len as u64;
        let Some(i) = self
            .free_slots
            .iter()
            .position(|&(s, l)| s <= start && end <= s as u64 + l as u64)
        else {
            return false;
        };
        let (s, l) = self.free_slots.remove(i);
        let after = (s as u64 + l as u64 - end) as u32;
        if after > 0 {
            self.free_slots.insert(i, (end as u32, after));
        }
        if start > s {
            self.free_slots.insert(i, (s, start - s));
        }
        true
    }

    pub(super) fn alloc_slots(&mut self, len: u32) -> Option<u32> {
        let i = self.free_slots.iter().position(|&(_, l)| l >= len)?;
        let (start, l) = self.free_slots[i];
        if l == len {
            self.free_slots.remove(i);
        } else {
            self.free_slots[i] = (start + len, l - len);
        }
        Some(start)
    }

    pub(super) fn free_range(&mut self, start: u32, len: u32) {
        let i = self.free_slots.partition_point(|&(s, _)| s < start);
        self.free_slots.insert(i, (start, len));
        // Merge with neighbours so large rings fit again after churn.
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.free_slots.len());
        for &(s, l) in &self.free_slots {
            match merged.last_mut() {
                Some((ps, pl)) if *ps + *pl == s => *pl += l,
                _ => merged.push((s, l)),
            }
        }
        self.free_slots = merged;
    }
}
