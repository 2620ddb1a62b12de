//! The reference evaluator: a deliberately simple interpreter over the
//! validated [`Policy`], with no tree, no interning and no shortcuts. It
//! exists to be obviously correct, so the compiled tree can be tested against
//! it (see `tests/equivalence.rs`). It is not used to serve decisions.
//!
//! It shares only leaf components with the compiled path: the path
//! canonicaliser, the pattern matcher and the credential verifiers (API key,
//! JWT, mTLS, Basic: it calls the same `Verifier::verify`, on verifiers it
//! builds itself), each tested on its own. What it checks independently is
//! the tree: route precedence, `any_of` / `all_of` evaluation, which failure
//! is reported, and scopes over the satisfying credentials.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::credential::apikey::KeyStore;
use crate::credential::{Outcome, Verifier, VerifyContext};
use crate::decision::Reason;
use crate::policy::{Policy, Requirement, Route, ScopeRequirement, Unmatched};
use crate::request::Request;

/// What the reference says about a request: the fields the tree must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allow: bool,
    pub status: u16,
    pub reason: Reason,
    pub route: Option<String>,
}

impl Verdict {
    fn new(reason: Reason, route: Option<&Route>) -> Self {
        Verdict {
            allow: reason == Reason::Allowed,
            status: reason.status(),
            reason,
            route: route.map(|r| r.name.value.clone()),
        }
    }
}

/// (any host?, any method?, path segment kinds): lower wins.
type Precedence = (bool, bool, Vec<u8>);

/// A policy ready for reference evaluation.
pub struct Reference<'p> {
    policy: &'p Policy,
    verifiers: Vec<Verifier>,
}

impl<'p> Reference<'p> {
    pub fn new(policy: &'p Policy) -> Result<Self, String> {
        let mut verifiers = Vec::new();
        for c in &policy.credentials {
            let dir = policy
                .files
                .get(c.name.span.file)
                .and_then(|f| f.parent())
                .unwrap_or(std::path::Path::new("."));
            verifiers.push(Verifier::build(&c.kind, dir)?);
        }
        Ok(Self { policy, verifiers })
    }

    /// The most specific matching route: host-specific beats any host, then
    /// method-specific beats any method, then the path pattern whose segment
    /// kinds (static < param < rest) compare lowest, position by position.
    fn route(&self, req: &Request, path: &str) -> Option<&'p Route> {
        let mut best: Option<(&Route, Precedence)> = None;
        for r in &self.policy.routes {
            let m = &r.matcher;
            let host_ok = match &m.host {
                None => true,
                Some(h) => req.host.as_deref() == Some(h.as_str()),
            };
            let method_ok = m.methods.is_empty() || m.methods.contains(&req.method);
            if !(host_ok && method_ok && crate::path::matches(&m.path, path)) {
                continue;
            }
            let key = (
                m.host.is_none(),
                m.methods.is_empty(),
                crate::path::rank(&m.path),
            );
            if best.as_ref().is_none_or(|(_, k)| key < *k) {
                best = Some((r, key));
            }
        }
        best.map(|(r, _)| r)
    }

    pub fn decide(&self, req: &Request, keys: &dyn KeyStore, now: SystemTime) -> Verdict {
        let Ok(path) = crate::path::canonical(&req.path) else {
            return Verdict::new(Reason::BadPath, None);
        };
        let Some(route) = self.route(req, &path) else {
            return match self.policy.settings.unmatched {
                Unmatched::Allow => Verdict::new(Reason::Allowed, None),
                Unmatched::Deny => Verdict::new(Reason::NoRoute, None),
            };
        };
        let ctx = VerifyContext::new(Some(now), keys);
        let mut outcomes: HashMap<usize, Outcome> = HashMap::new();
        let mut satisfied: Vec<usize> = Vec::new();
        if let Err(reason) = self.check(&route.require, req, &ctx, &mut outcomes, &mut satisfied) {
            return Verdict::new(reason, Some(route));
        }
        // Scopes: each satisfying credential that carries scopes must hold them.
        let mut carried: Vec<Vec<String>> = Vec::new();
        for i in &satisfied {
            if let Some(Outcome::Valid(id)) = outcomes.get(i) {
                if let Some(s) = &id.scopes {
                    carried.push(s.to_vec());
                }
            }
        }
        let ok = match &route.scopes {
            ScopeRequirement::None => true,
            ScopeRequirement::AllOf(need) => {
                !carried.is_empty()
                    && carried
                        .iter()
                        .all(|have| need.iter().all(|n| have.contains(n)))
            }
            ScopeRequirement::AnyOf(need) => {
                // The effective set is the intersection of what each carries.
                !carried.is_empty()
                    && need
                        .iter()
                        .any(|n| carried.iter().all(|have| have.contains(n)))
            }
        };
        if !ok {
            return Verdict::new(Reason::InsufficientScope, Some(route));
        }
        Verdict::new(Reason::Allowed, Some(route))
    }

    fn check(
        &self,
        r: &Requirement,
        req: &Request,
        ctx: &VerifyContext<'_>,
        outcomes: &mut HashMap<usize, Outcome>,
        satisfied: &mut Vec<usize>,
    ) -> Result<(), Reason> {
        match r {
            Requirement::Public => Ok(()),
            Requirement::Credential(i) => {
                let outcome = match outcomes.get(i) {
                    Some(o) => o.clone(),
                    None => {
                        let o = match self.verifiers.get(*i) {
                            Some(v) => v.verify(req, ctx),
                            None => {
                                Outcome::Invalid(Reason::StoreUnavailable, "no such credential")
                            }
                        };
                        outcomes.insert(*i, o.clone());
                        o
                    }
                };
                match outcome {
                    Outcome::Absent => Err(Reason::CredentialMissing),
                    Outcome::Invalid(reason, _) => Err(reason),
                    Outcome::Valid(_) => {
                        if !satisfied.contains(i) {
                            satisfied.push(*i);
                        }
                        Ok(())
                    }
                }
            }
            Requirement::AllOf(children) => {
                for c in children {
                    self.check(c, req, ctx, outcomes, satisfied)?;
                }
                Ok(())
            }
            Requirement::AnyOf(children) => {
                let mut failures = Vec::new();
                for c in children {
                    let before = satisfied.clone();
                    match self.check(c, req, ctx, outcomes, satisfied) {
                        Ok(()) => return Ok(()),
                        Err(reason @ (Reason::AmbiguousCredential | Reason::StoreUnavailable)) => {
                            return Err(reason)
                        }
                        Err(reason) => {
                            *satisfied = before;
                            failures.push(reason);
                        }
                    }
                }
                // The first failure that is not "missing", else "missing".
                Err(failures
                    .into_iter()
                    .find(|r| *r != Reason::CredentialMissing)
                    .unwrap_or(Reason::CredentialMissing))
            }
        }
    }
}
