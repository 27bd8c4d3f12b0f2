//! Back-to-back sets: one place in the queue, several DJs.
//!
//! A set's lead DJ (or an admin) adds partner DJs to it, on air or still waiting. The set
//! keeps one place, one clock and one budget; its members each publish with their own key.
//! One member's connection feeds the program (the place's `dj` and `link`); the other
//! members who publish are *standby*: accepted and kept warm like a queued DJ (the hub
//! caches their GOP), so a hand-over is a program source change like any DJ change and
//! the program splices it the same way.
//!
//! * A member who publishes while their set's place is held (grace, reservation) takes the
//!   place at once: the set goes on (or back on) air with them.
//! * The member on air who drops hands over to the first live standby member automatically;
//!   with nobody standing by, the usual rules of the place apply (grace for the lead,
//!   leaving for a waiting place, the end of the set on a clean stop).
//! * When the set ends, every standby member is disconnected with it.
//!
//! The first member is the set's *host*: the name its [`Notice::OnAir`] and
//! [`Notice::SetEnded`] carry, so that set history sees one set whoever is on air. A host
//! who leaves a set on air ends it under their name, and the set that goes on is the next
//! member's (`SetEnded` then `OnAir`).

use serde::{Deserialize, Serialize};

use super::*;

/// How many DJs one set can hold: a bound on the roster, not an artistic limit.
pub const MAX_MEMBERS: usize = 8;

/// Who asks for a back-to-back change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An operator: may change any set.
    Admin,
    /// A DJ: may change only a set they are a member of.
    Dj(UserId),
}

/// Why a back-to-back command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B2bError {
    /// The user named as the set is in no set.
    NoSuchSet,
    /// The caller is neither a member of the set nor an admin.
    NotAllowed,
    /// The user is not a member of this set.
    NotAMember,
    /// The member does not publish now, so they cannot go on air.
    NotLive,
    /// The member is on air already.
    AlreadyOnAir,
    /// The DJ is already a member of this set.
    AlreadyMember,
    /// The DJ holds a place (or a set membership) elsewhere in the queue.
    Busy,
    /// The set has [`MAX_MEMBERS`] members.
    Full,
    /// The member on air cannot leave while nobody else publishes: hand over first, or end
    /// the set.
    OnAirAlone,
}

impl fmt::Display for B2bError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            B2bError::NoSuchSet => "this DJ is in no set",
            B2bError::NotAllowed => "only the set's DJs or an admin may change it",
            B2bError::NotAMember => "this DJ is not a member of the set",
            B2bError::NotLive => "this DJ is not streaming: they must start streaming before taking over",
            B2bError::AlreadyOnAir => "this DJ is already on air",
            B2bError::AlreadyMember => "this DJ is already in the set",
            B2bError::Busy => "this DJ is in the queue with a set of their own",
            B2bError::Full => "the set has as many DJs as it can take",
            B2bError::OnAirAlone => "this DJ is on air and nobody else in the set is streaming: hand over first",
        })
    }
}

impl std::error::Error for B2bError {}

/// A member of a back-to-back set, for status views.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub dj: Dj,
    /// The member's publishing connection, if they publish now.
    pub conn: Option<ConnId>,
    /// Whether this member is the one whose connection feeds the program (or will).
    pub on_air: bool,
}

/// A back-to-back set's members in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct B2bSnapshot {
    /// The member whose place it is (the `dj` of the place in the snapshot).
    pub on_air: UserId,
    /// Everyone in the set, host first.
    pub members: Vec<Dj>,
}

/// The back-to-back part of a place. Empty for a solo set.
#[derive(Clone, Debug, Default)]
pub(super) struct B2b {
    /// Everyone in the set including the member on air, in the order they joined.
    members: Vec<Dj>,
    /// Members other than the one on air who publish now, in the order they started.
    standby: Vec<(UserId, ConnId)>,
}

impl Place {
    /// The name the set goes by in notices that open and close it.
    pub(super) fn host(&self) -> &Dj {
        self.b2b.members.first().unwrap_or(&self.dj)
    }

    /// "Alice b2b Bob", or the DJ's name for a solo set.
    fn set_name(&self) -> String {
        if self.b2b.members.is_empty() {
            return self.dj.dj_name.clone();
        }
        let names: Vec<&str> = self.b2b.members.iter().map(|dj| dj.dj_name.as_str()).collect();
        names.join(" b2b ")
    }

    fn is_member(&self, user: UserId) -> bool {
        self.dj.user_id == user || self.b2b.members.iter().any(|dj| dj.user_id == user)
    }

    pub(super) fn member_statuses(&self) -> Vec<MemberStatus> {
        self.b2b
            .members
            .iter()
            .map(|dj| {
                let on_air = dj.user_id == self.dj.user_id;
                let conn = if on_air { self.conn() } else { self.standby_conn(dj.user_id) };
                MemberStatus { dj: dj.clone(), conn, on_air }
            })
            .collect()
    }

    fn standby_conn(&self, user: UserId) -> Option<ConnId> {
        self.b2b.standby.iter().find(|(member, _)| *member == user).map(|(_, conn)| *conn)
    }

    /// The connections of the members standing by, ready for a hand-over.
    pub(super) fn standby_conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.b2b.standby.iter().map(|(_, conn)| *conn)
    }

    /// Disconnects the members standing by: their set is over.
    pub(super) fn release_standby(&self, reason: DisconnectReason, fx: &mut Effects) {
        for (_, conn) in &self.b2b.standby {
            fx.emit(Output::Disconnect { conn: *conn, reason });
        }
    }

    /// Puts the standby member `to` in the place; the member it replaces joins the standby
    /// members if it was live. Returns who was on air, and whether the place was held.
    fn swap_in(&mut self, to: UserId) -> Result<(Dj, bool), B2bError> {
        let index = self.b2b.standby.iter().position(|(member, _)| *member == to).ok_or(B2bError::NotLive)?;
        let dj = self.b2b.members.iter().find(|dj| dj.user_id == to).cloned().ok_or(B2bError::NotAMember)?;
        let (_, conn) = self.b2b.standby.remove(index);
        let from = std::mem::replace(&mut self.dj, dj);
        let was = std::mem::replace(&mut self.link, Link::Live(conn));
        match was {
            Link::Live(old) => {
                self.b2b.standby.push((from.user_id, old));
                Ok((from, false))
            }
            Link::Held(_) => Ok((from, true)),
        }
    }

    /// Takes `user` out of the roster; a set of one is a solo set again.
    fn drop_member(&mut self, user: UserId) {
        self.b2b.members.retain(|dj| dj.user_id != user);
        self.b2b.standby.retain(|(member, _)| *member != user);
        if self.b2b.members.len() < 2 {
            self.b2b = B2b::default();
        }
    }
}

impl Engine {
    fn place_mut(&mut self, spot: Spot) -> Option<&mut Place> {
        match spot {
            Spot::Lead => self.lead.as_mut().map(|lead| &mut lead.place),
            Spot::Waiting(index) => self.waiting.get_mut(index),
        }
    }

    /// The set `user` is a member of (on air in it or not).
    fn set_of_member(&self, user: UserId) -> Option<Spot> {
        self.spot_of(|place| place.is_member(user))
    }

    /// The set in which `conn` stands by.
    fn standby_set(&self, conn: ConnId) -> Option<Spot> {
        self.spot_of(|place| place.b2b.standby.iter().any(|(_, c)| *c == conn))
    }

    /// The set named by its member `set`, if `by` may change it.
    fn set_for(&self, set: UserId, by: Caller) -> Result<Spot, AdminError> {
        let spot = self.set_of_member(set).ok_or(AdminError::B2b(B2bError::NoSuchSet))?;
        let allowed = match by {
            Caller::Admin => true,
            Caller::Dj(user) => self.place(spot).is_some_and(|place| place.is_member(user)),
        };
        if allowed { Ok(spot) } else { Err(AdminError::B2b(B2bError::NotAllowed)) }
    }

    pub(super) fn add_member(&mut self, set: UserId, dj: Dj, by: Caller, fx: &mut Effects) -> Result<(), AdminError> {
        let spot = self.set_for(set, by)?;
        match self.set_of_member(dj.user_id) {
            Some(other) if other == spot => return Err(AdminError::B2b(B2bError::AlreadyMember)),
            Some(_) => return Err(AdminError::B2b(B2bError::Busy)),
            None => {}
        }
        let place = self.place_mut(spot).ok_or(AdminError::B2b(B2bError::NoSuchSet))?;
        if place.b2b.members.len() >= MAX_MEMBERS {
            return Err(AdminError::B2b(B2bError::Full));
        }
        if place.b2b.members.is_empty() {
            place.b2b.members.push(place.dj.clone());
        }
        place.b2b.members.push(dj.clone());
        fx.notice(Notice::MemberAdded { dj, set: place.set_name() });
        fx.changed = true;
        Ok(())
    }

    pub(super) fn remove_member(
        &mut self,
        now: Instant,
        set: UserId,
        user: UserId,
        by: Caller,
        fx: &mut Effects,
    ) -> Result<(), AdminError> {
        let spot = self.set_for(set, by)?;
        let place = self.place(spot).ok_or(AdminError::B2b(B2bError::NoSuchSet))?;
        if place.b2b.members.is_empty() || !place.is_member(user) {
            return Err(AdminError::B2b(B2bError::NotAMember));
        }
        if place.dj.user_id == user && place.b2b.standby.is_empty() {
            return Err(AdminError::B2b(B2bError::OnAirAlone));
        }
        self.drop_from_set(now, spot, user, DisconnectReason::Removed, fx);
        Ok(())
    }

    /// An admin removing or disabling a member of a back-to-back set takes them out of the
    /// set only, unless they are on air with nobody to hand over to (then the whole place
    /// goes, as for a solo DJ). Returns whether it handled `user`.
    pub(super) fn remove_from_b2b(
        &mut self,
        now: Instant,
        user: UserId,
        reason: DisconnectReason,
        fx: &mut Effects,
    ) -> bool {
        let Some(spot) = self.set_of_member(user) else { return false };
        let Some(place) = self.place(spot) else { return false };
        if place.b2b.members.is_empty() || (place.dj.user_id == user && place.b2b.standby.is_empty()) {
            return false;
        }
        self.drop_from_set(now, spot, user, reason, fx);
        true
    }

    /// Takes a member out of a set that keeps going: the member on air hands over first.
    fn drop_from_set(&mut self, now: Instant, spot: Spot, user: UserId, reason: DisconnectReason, fx: &mut Effects) {
        let on_air = self.place(spot).is_some_and(|place| place.dj.user_id == user);
        if on_air {
            let next = self.place(spot).and_then(|place| place.b2b.standby.first().map(|(member, _)| *member));
            if let Some(next) = next {
                self.swap(now, spot, next, false, fx);
            }
        }
        let Some(place) = self.place_mut(spot) else { return };
        if let Some(conn) = place.standby_conn(user) {
            fx.emit(Output::Disconnect { conn, reason });
        }
        let host = place.host().clone();
        let dj = place.b2b.members.iter().find(|dj| dj.user_id == user).cloned();
        place.drop_member(user);
        let new_host = place.host().clone();
        if let Some(dj) = dj {
            fx.notice(Notice::MemberLeft { dj, set: place.set_name() });
        }
        // Set history and recordings go by the host's name: a set on air that loses its
        // host is over, and the partners carry on with a set of their own.
        if host.user_id == user && spot == Spot::Lead && self.lead.as_ref().is_some_and(|lead| lead.aired) {
            let ended = if reason == DisconnectReason::Disabled { EndReason::Disabled } else { EndReason::Removed };
            fx.notice(Notice::SetEnded { dj: host, reason: ended });
            fx.notice(Notice::OnAir { dj: new_host });
        }
        fx.changed = true;
    }

    pub(super) fn hand_over_to(
        &mut self,
        now: Instant,
        set: UserId,
        to: UserId,
        by: Caller,
        fx: &mut Effects,
    ) -> Result<(), AdminError> {
        let spot = self.set_for(set, by)?;
        let place = self.place(spot).ok_or(AdminError::B2b(B2bError::NoSuchSet))?;
        if !place.is_member(to) || place.b2b.members.is_empty() {
            return Err(AdminError::B2b(B2bError::NotAMember));
        }
        if place.dj.user_id == to {
            return Err(AdminError::B2b(B2bError::AlreadyOnAir));
        }
        if place.standby_conn(to).is_none() {
            return Err(AdminError::B2b(B2bError::NotLive));
        }
        self.swap(now, spot, to, false, fx);
        Ok(())
    }

    /// Puts the live member `to` on air in the set at `spot`. The program follows through
    /// [`Engine::sync_program`], like any change of lead.
    fn swap(&mut self, now: Instant, spot: Spot, to: UserId, automatic: bool, fx: &mut Effects) {
        let Some(place) = self.place_mut(spot) else { return };
        let Ok((from, was_held)) = place.swap_in(to) else { return };
        fx.notice(Notice::HandedOver { from, to: place.dj.clone(), set: place.set_name(), automatic });
        fx.changed = true;
        if spot == Spot::Lead && was_held {
            // Back from grace (or a reservation) with another member: the set resumes.
            self.went_on_air(now, fx);
        }
        self.sync_program(fx);
    }

    /// A member of a set publishes (other than the member whose place it is reclaiming it).
    /// Returns whether it handled the request.
    pub(super) fn publish_as_member(&mut self, now: Instant, conn: ConnId, dj: &Dj, fx: &mut Effects) -> bool {
        if self.standby_set(conn).is_some() || self.spot_of_conn(conn).is_some() {
            Self::reject(conn, RejectReason::AlreadyPublishing, fx);
            return true;
        }
        let Some(spot) = self.set_of_member(dj.user_id) else { return false };
        let Some(place) = self.place_mut(spot) else { return false };
        if place.dj.user_id == dj.user_id {
            return false;
        }
        if place.standby_conn(dj.user_id).is_some() {
            Self::reject(conn, RejectReason::AlreadyPublishing, fx);
            return true;
        }
        // The database is authoritative for the name, which may have changed.
        if let Some(member) = place.b2b.members.iter_mut().find(|member| member.user_id == dj.user_id) {
            member.dj_name.clone_from(&dj.dj_name);
        }
        place.b2b.standby.push((dj.user_id, conn));
        let held = place.hold().is_some();
        let position = match spot {
            Spot::Lead => 0,
            Spot::Waiting(index) => index + 1,
        };
        fx.emit(Output::PublishAccepted { conn, on_air: held && spot == Spot::Lead, position });
        fx.notice(Notice::StandingBy { dj: dj.clone(), set: place.set_name() });
        if held {
            self.swap(now, spot, dj.user_id, true, fx);
        }
        true
    }

    /// A member's connection went away: a standby member just stops standing by; the
    /// member on air hands over to a standby member if there is one. Returns whether it
    /// handled the departure (otherwise the place's usual rules apply).
    pub(super) fn member_departure(
        &mut self,
        now: Instant,
        conn: ConnId,
        departure: Departure,
        fx: &mut Effects,
    ) -> bool {
        if let Some(spot) = self.standby_set(conn) {
            let Some(place) = self.place_mut(spot) else { return false };
            let user = place.b2b.standby.iter().find(|(_, c)| *c == conn).map(|(member, _)| *member);
            place.b2b.standby.retain(|(_, c)| *c != conn);
            let dj = place.b2b.members.iter().find(|dj| Some(dj.user_id) == user).cloned();
            if let (Departure::Stalled, Some(dj)) = (departure, dj) {
                fx.emit(Output::Disconnect { conn, reason: DisconnectReason::Stalled });
                fx.notice(Notice::Stalled { dj });
            }
            return true;
        }
        let Some(spot) = self.spot_of_conn(conn) else { return false };
        let Some(next) = self.place(spot).and_then(|place| place.b2b.standby.first().map(|(member, _)| *member)) else {
            return false;
        };
        if departure == Departure::Stalled {
            fx.emit(Output::Disconnect { conn, reason: DisconnectReason::Stalled });
            if let Some(place) = self.place(spot) {
                fx.notice(Notice::Stalled { dj: place.dj.clone() });
            }
        }
        // The set goes on without a break: the clock keeps running, no grace, no slate.
        self.swap(now, spot, next, true, fx);
        if let Some(place) = self.place_mut(spot) {
            // The member who left is no longer live, so never a hand-over target.
            place.b2b.standby.retain(|(_, c)| *c != conn);
        }
        true
    }

    pub(super) fn b2b_snapshots(&self) -> Vec<B2bSnapshot> {
        let places = self.lead.iter().map(|lead| &lead.place).chain(self.waiting.iter());
        places
            .filter(|place| !place.b2b.members.is_empty())
            .map(|place| B2bSnapshot { on_air: place.dj.user_id, members: place.b2b.members.clone() })
            .collect()
    }

    /// Gives the restored places their members back. A member who holds a place of their
    /// own, or is already in another set, is left out (only a hand-edited snapshot says so).
    pub(super) fn restore_b2b(&mut self, saved: Vec<B2bSnapshot>) {
        for set in saved {
            let Some(spot) = self.spot_of_user(set.on_air) else { continue };
            let members: Vec<Dj> = set
                .members
                .into_iter()
                .filter(|dj| dj.user_id == set.on_air || self.set_of_member(dj.user_id).is_none())
                .take(MAX_MEMBERS)
                .collect();
            let whole = members.len() >= 2 && members.iter().any(|dj| dj.user_id == set.on_air);
            if let Some(place) = self.place_mut(spot).filter(|_| whole) {
                place.b2b.members = members;
            }
        }
    }
}

/// "Alice b2b Bob" from a status's members, or `dj`'s name for a solo set.
fn names_of(members: &[MemberStatus], dj: &Dj) -> String {
    if members.is_empty() {
        return dj.dj_name.clone();
    }
    let names: Vec<&str> = members.iter().map(|m| m.dj.dj_name.as_str()).collect();
    names.join(" b2b ")
}

impl LeadStatus {
    /// The DJ whose set this is: the first member of a back-to-back set, else the DJ.
    pub fn host(&self) -> &Dj {
        self.members.first().map_or(&self.dj, |host| &host.dj)
    }

    /// Every DJ of the set: "Alice b2b Bob", or the DJ's name for a solo set.
    pub fn set_name(&self) -> String {
        names_of(&self.members, &self.dj)
    }
}

impl WaitingStatus {
    /// Every DJ of the set: "Alice b2b Bob", or the DJ's name for a solo set.
    pub fn set_name(&self) -> String {
        names_of(&self.members, &self.dj)
    }
}

impl Status {
    /// The DJ whose set `user` plays in: the host (first member) of their back-to-back set,
    /// else `user`. Set history and tracklists go by it.
    pub fn set_host_of(&self, user: UserId) -> UserId {
        let lead = self.lead.iter().map(|lead| &lead.members);
        let waiting = self.waiting.iter().map(|place| &place.members);
        lead.chain(waiting)
            .find(|members| members.iter().any(|m| m.dj.user_id == user))
            .and_then(|members| members.first())
            .map_or(user, |host| host.dj.user_id)
    }
}
