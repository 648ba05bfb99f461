//! Who may do what: every permission rule of the service, each written
//! once.
//!
//! Two kinds of rule:
//!
//! - **Role rules** ("only ADMIN approves loans") depend on the caller
//!   alone. Each is a [`Rule`]; a [`Permit`] for it can only be had by
//!   passing the check, and the services that need the rule take the
//!   permit as an argument, so the check can be neither skipped nor
//!   repeated. As a handler argument the permit is checked before the
//!   request body is read: a caller without the role gets 403, whatever
//!   the body.
//! - **Ownership rules** depend on the record: the services call
//!   [`require_own_or_staff`] for per-user paths (403 when it is someone
//!   else's) and [`may_see`] for records addressed by their own id (the
//!   caller then answers 404, so a user never learns that someone else's
//!   record exists).

use std::marker::PhantomData;

use uuid::Uuid;

use crate::auth::actor::Actor;
use crate::enums::Role;

/// A permission refused, with the reason the caller is told (a 403 at the
/// HTTP edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("forbidden: {0}")]
pub struct Forbidden(pub &'static str);

/// A permission that depends only on the caller's role.
pub trait Rule: 'static {
    /// Why it was refused, for the 403.
    const REFUSAL: &'static str;

    fn allows(role: Role) -> bool;
}

/// Proof that `actor` passed rule `R`.
#[derive(Debug)]
pub struct Permit<R> {
    actor: Actor,
    rule: PhantomData<fn() -> R>,
}

impl<R> Clone for Permit<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Permit<R> {}

impl<R: Rule> Permit<R> {
    /// The permit, if `actor` has a role `R` allows; else refused.
    pub fn check(actor: Actor) -> Result<Permit<R>, Forbidden> {
        if R::allows(actor.role) {
            Ok(Permit {
                actor,
                rule: PhantomData,
            })
        } else {
            Err(Forbidden(R::REFUSAL))
        }
    }
}

impl<R> Permit<R> {
    /// Who holds it.
    pub fn actor(&self) -> Actor {
        self.actor
    }
}

const ADMIN_ONLY: &str = "This action needs the ADMIN role.";
const STAFF_ONLY: &str = "This action needs the ADMIN or MANAGER role.";

macro_rules! role_rules {
    ($( $(#[$doc:meta])* $rule:ident: $allows:expr, $refusal:expr; )+) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub enum $rule {}

            impl Rule for $rule {
                const REFUSAL: &'static str = $refusal;

                fn allows(role: Role) -> bool {
                    let allows: fn(Role) -> bool = $allows;
                    allows(role)
                }
            }
        )+
    };
}

fn admin(role: Role) -> bool {
    role == Role::Admin
}

fn staff(role: Role) -> bool {
    role.is_staff()
}

role_rules! {
    /// Approving a loan sets its terms: ADMIN.
    ApproveLoans: admin, ADMIN_ONLY;
    /// Rejecting an application: ADMIN, MANAGER.
    RejectLoans: staff, STAFF_ONLY;
    /// Listing every loan: ADMIN, MANAGER.
    ReadAllLoans: staff, STAFF_ONLY;
    /// The portfolio report: ADMIN, MANAGER.
    ReadPortfolio: staff, STAFF_ONLY;
    /// Listing every user: ADMIN, MANAGER.
    ReadAllUsers: staff, STAFF_ONLY;
    /// Changing someone's role: ADMIN.
    ChangeRoles: admin, ADMIN_ONLY;
    /// Reading the audit trail: ADMIN.
    ReadAuditLog: admin, ADMIN_ONLY;
    /// Running a scheduled job by hand: ADMIN.
    RunJobs: admin, ADMIN_ONLY;
    /// Looking at the overdue list as of another day: ADMIN, MANAGER.
    ChooseOverdueDate: staff, "Only staff may choose the as-of date.";
    /// Recording a payment with a value date other than today: ADMIN,
    /// MANAGER (staff record transfers that arrived late).
    ChooseValueDate: staff, "Only staff may record a payment with a value date.";
    /// Reversing a posted payment (it bounced): ADMIN, MANAGER.
    ReversePayments: staff, STAFF_ONLY;
    /// The trial balance, the journal and the closing date: ADMIN,
    /// MANAGER.
    ReadBooks: staff, STAFF_ONLY;
    /// Closing the books through a day: ADMIN.
    CloseBooks: admin, ADMIN_ONLY;
    /// Reading four-eyes decisions: ADMIN, MANAGER.
    ReadDecisions: staff, STAFF_ONLY;
    /// Confirming someone else's request: ADMIN.
    ConfirmDecisions: admin, ADMIN_ONLY;
    /// Asking for a loan to be written off: ADMIN, MANAGER.
    RequestWriteOffs: staff, STAFF_ONLY;
}

/// For per-user paths (`/users/:id`, `/loans/user/:id`, …): the user
/// themselves or staff, else 403.
pub fn require_own_or_staff(actor: Actor, user_id: Uuid) -> Result<(), Forbidden> {
    if actor.id == user_id || actor.role.is_staff() {
        Ok(())
    } else {
        Err(Forbidden("You may only access your own records."))
    }
}

/// For records addressed by their own id (a loan, a payment): whether
/// `actor` may see one owned by `owner_id`. Callers answer 404 when not.
pub fn may_see(actor: Actor, owner_id: Uuid) -> bool {
    actor.id == owner_id || actor.role.is_staff()
}

/// For what only the borrower may do to their own loan (withdraw an
/// application): staff who may see the loan get 403.
pub fn require_borrower(
    actor: Actor,
    owner_id: Uuid,
    refusal: &'static str,
) -> Result<(), Forbidden> {
    if actor.id == owner_id {
        Ok(())
    } else {
        Err(Forbidden(refusal))
    }
}

/// Whose records a list that every role may ask for shows `actor`: every
/// user's for staff (`None`), else only their own.
pub fn visible_owner(actor: Actor) -> Option<Uuid> {
    (!actor.role.is_staff()).then_some(actor.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor {
            id: Uuid::now_v7(),
            role,
        }
    }

    #[test]
    fn role_rules_admit_exactly_their_roles() {
        let admits = |check: fn(Actor) -> bool| {
            Role::ALL
                .iter()
                .filter(|role| check(actor(**role)))
                .map(|role| role.as_str())
                .collect::<Vec<_>>()
        };
        let admin_only = vec!["ADMIN"];
        let staff = vec!["ADMIN", "MANAGER"];
        assert_eq!(
            admits(|a| Permit::<ApproveLoans>::check(a).is_ok()),
            admin_only
        );
        assert_eq!(
            admits(|a| Permit::<ChangeRoles>::check(a).is_ok()),
            admin_only
        );
        assert_eq!(
            admits(|a| Permit::<ReadAuditLog>::check(a).is_ok()),
            admin_only
        );
        assert_eq!(admits(|a| Permit::<RunJobs>::check(a).is_ok()), admin_only);
        assert_eq!(
            admits(|a| Permit::<CloseBooks>::check(a).is_ok()),
            admin_only
        );
        assert_eq!(admits(|a| Permit::<ReadBooks>::check(a).is_ok()), staff);
        assert_eq!(admits(|a| Permit::<RejectLoans>::check(a).is_ok()), staff);
        assert_eq!(admits(|a| Permit::<ReadAllLoans>::check(a).is_ok()), staff);
        assert_eq!(admits(|a| Permit::<ReadAllUsers>::check(a).is_ok()), staff);
        assert_eq!(
            admits(|a| Permit::<ChooseOverdueDate>::check(a).is_ok()),
            staff
        );
    }

    #[test]
    fn ownership_rules() {
        let user = actor(Role::User);
        let other = Uuid::now_v7();
        assert!(require_own_or_staff(user, user.id).is_ok());
        assert!(matches!(
            require_own_or_staff(user, other),
            Err(Forbidden(_))
        ));
        assert!(require_own_or_staff(actor(Role::Manager), other).is_ok());
        assert!(may_see(user, user.id));
        assert!(!may_see(user, other));
        assert!(may_see(actor(Role::Admin), other));
        assert_eq!(visible_owner(user), Some(user.id));
        assert_eq!(visible_owner(actor(Role::Manager)), None);
    }
}
