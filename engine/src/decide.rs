//! Evaluate one request against a compiled policy. Every path out of here is
//! a [`Decision`]; anything unexpected is a deny.

use std::sync::Arc;
use std::time::SystemTime;

use crate::compile::{CompiledPolicy, CompiledRoute, Req, ScopeCheck};
use crate::credential::apikey::KeyStore;
use crate::credential::{Challenge, CredentialType, Identity, Outcome, VerifyContext};
use crate::decision::{Decision, Principal, RateLimitStatus, Reason};
use crate::policy::RateKey;
use crate::ratelimit::{BucketKey, LimitSpec, Limiter};
use crate::request::Request;

use smallvec::SmallVec;

/// Credentials that satisfied a requirement: one or two in practice, kept inline.
type Satisfied = SmallVec<[(usize, Identity); 2]>;

/// How to decide: explain traces and a fixed clock (policy tests).
#[derive(Debug, Clone, Default)]
pub struct DecideOptions {
    pub explain: bool,
    /// Evaluate credentials as of this time instead of now.
    pub now: Option<SystemTime>,
}

struct Trace(Option<Vec<String>>);

impl Trace {
    fn note(&mut self, f: impl FnOnce() -> String) {
        if let Some(t) = self.0.as_mut() {
            t.push(f());
        }
    }
}

/// Reasons that end the whole decision at once, whatever `any_of` has left to try.
fn fatal(r: Reason) -> bool {
    matches!(r, Reason::AmbiguousCredential | Reason::StoreUnavailable)
}

struct Failure {
    reason: Reason,
    cred: Option<usize>,
}

struct Eval<'a> {
    policy: &'a CompiledPolicy,
    req: &'a Request,
    ctx: VerifyContext<'a>,
    memo: Vec<Option<Outcome>>,
    trace: &'a mut Trace,
}

impl Eval<'_> {
    /// Verifies a credential at most once per decision.
    fn outcome(&mut self, i: usize) -> Outcome {
        if let Some(Some(o)) = self.memo.get(i) {
            return o.clone();
        }
        let Some(cred) = self.policy.credentials.get(i) else {
            return Outcome::Invalid(
                Reason::StoreUnavailable,
                "internal: unknown credential index",
            );
        };
        let o = cred.verifier.verify(self.req, &self.ctx);
        let name = &cred.name;
        self.trace.note(|| match &o {
            Outcome::Absent => format!("credential `{name}`: absent"),
            Outcome::Valid(id) => match &id.fingerprint {
                Some(fp) => format!(
                    "credential `{name}`: valid (key `{fp}`, principal `{}`)",
                    id.principal
                ),
                None => format!("credential `{name}`: valid (principal `{}`)", id.principal),
            },
            Outcome::Invalid(r, why) => format!("credential `{name}`: {} ({why})", r.as_str()),
        });
        if let Some(slot) = self.memo.get_mut(i) {
            *slot = Some(o.clone());
        }
        o
    }

    fn eval(&mut self, r: &Req, out: &mut Satisfied) -> Result<(), Failure> {
        match r {
            Req::Public => Ok(()),
            Req::Cred(i) => match self.outcome(*i) {
                Outcome::Valid(id) => {
                    if !out.iter().any(|(j, _)| j == i) {
                        out.push((*i, id));
                    }
                    Ok(())
                }
                Outcome::Absent => Err(Failure {
                    reason: Reason::CredentialMissing,
                    cred: Some(*i),
                }),
                Outcome::Invalid(reason, _) => Err(Failure {
                    reason,
                    cred: Some(*i),
                }),
            },
            Req::AnyOf(children) => {
                let mut first: Option<Failure> = None;
                for c in children.iter() {
                    let mark = out.len();
                    match self.eval(c, out) {
                        Ok(()) => return Ok(()),
                        Err(f) if fatal(f.reason) => return Err(f),
                        Err(f) => {
                            out.truncate(mark);
                            let replace = match &first {
                                None => true,
                                Some(prev) => {
                                    prev.reason == Reason::CredentialMissing
                                        && f.reason != Reason::CredentialMissing
                                }
                            };
                            if replace {
                                first = Some(f);
                            }
                        }
                    }
                }
                Err(first.unwrap_or(Failure {
                    reason: Reason::CredentialMissing,
                    cred: None,
                }))
            }
            Req::AllOf(children) => {
                for c in children.iter() {
                    self.eval(c, out)?;
                }
                Ok(())
            }
        }
    }
}

/// Decides one request. Never panics by design; callers still wrap it in
/// `catch_unwind`-free code paths only (see `Engine::decide`).
pub fn decide(
    policy: &CompiledPolicy,
    limiter: &dyn Limiter,
    keys: &dyn KeyStore,
    req: &Request,
    opts: &DecideOptions,
) -> Decision {
    if !opts.explain {
        // Returned as built: no trace to attach, so no move of the decision.
        return decide_inner(policy, limiter, keys, req, opts, &mut Trace(None));
    }
    let mut trace = Trace(Some(Vec::new()));
    let mut d = decide_inner(policy, limiter, keys, req, opts, &mut trace);
    d.trace = trace.0;
    d
}

fn decide_inner(
    policy: &CompiledPolicy,
    limiter: &dyn Limiter,
    keys: &dyn KeyStore,
    req: &Request,
    opts: &DecideOptions,
    trace: &mut Trace,
) -> Decision {
    let path = match crate::path::canonical(&req.path) {
        Ok(p) => p,
        Err(e) => {
            trace.note(|| format!("path refused: {}", e.describe()));
            return Decision::deny(Reason::BadPath);
        }
    };
    let Some(route_idx) = policy.route_for(req.host.as_deref(), &req.method, &path) else {
        if policy.unmatched_allows() {
            trace.note(|| {
                format!(
                    "no route for {} `{path}`; settings.unmatched is allow",
                    req.method
                )
            });
            return Decision::deny(Reason::Allowed).with_allow();
        }
        trace.note(|| format!("no route for {} `{path}`", req.method));
        return Decision::deny(Reason::NoRoute);
    };
    let Some(route) = policy.routes.get(route_idx) else {
        return Decision::deny(Reason::StoreUnavailable);
    };
    trace.note(|| format!("route `{}` matched {} `{path}`", route.name, req.method));

    let mut eval = Eval {
        policy,
        req,
        ctx: VerifyContext::new(opts.now, keys),
        memo: Vec::new(),
        trace,
    };
    let granted = match &route.req {
        // The common shape: one credential, no identity list to build.
        Req::Cred(i) => match eval.outcome(*i) {
            Outcome::Valid(id) => Ok(Granted::one(policy, route, *i, id)),
            Outcome::Absent => Err(Failure {
                reason: Reason::CredentialMissing,
                cred: Some(*i),
            }),
            Outcome::Invalid(reason, _) => Err(Failure {
                reason,
                cred: Some(*i),
            }),
        },
        other => {
            let mut satisfied = Satisfied::new();
            if !matches!(other, Req::Public) {
                eval.memo = vec![None; policy.credentials.len()];
            }
            eval.eval(other, &mut satisfied)
                .map(|()| Granted::many(policy, route, satisfied))
        }
    };
    let trace = eval.trace;
    match granted {
        Ok(g) => finish(policy, limiter, req, route, trace, g),
        Err(f) => {
            let mut d = Decision::deny(f.reason);
            d.fingerprint = eval.ctx.take_refused_key();
            d.route = Some(Arc::clone(&route.name));
            d.credential = f
                .cred
                .and_then(|i| policy.credentials.get(i))
                .map(|c| Arc::clone(&c.name));
            add_challenge(&mut d, route);
            trace.note(|| format!("requirement not met: {}", f.reason.as_str()));
            d
        }
    }
}

/// What the satisfied requirement yields for the rest of the decision.
struct Granted {
    scopes_ok: bool,
    credential: Option<Arc<str>>,
    principal: Option<Principal>,
    fingerprint: Option<Arc<str>>,
    /// The first key's rate-limit override, if any.
    over: Option<crate::credential::RateOverride>,
    /// The first credential's principal, when the route's limit is keyed by credential.
    first_cred: Option<Arc<str>>,
}

impl Granted {
    /// One satisfying credential: its identity moves into the principal whole.
    fn one(policy: &CompiledPolicy, route: &CompiledRoute, i: usize, id: Identity) -> Self {
        let scopes_ok = scopes_held(policy, route, || id.scopes.as_deref().into_iter());
        let first_cred = match &route.limit {
            Some(l) if l.key == RateKey::Credential => Some(Arc::clone(&id.principal)),
            _ => None,
        };
        Granted {
            scopes_ok,
            credential: policy.credentials.get(i).map(|c| Arc::clone(&c.name)),
            over: id.rate_override,
            first_cred,
            fingerprint: id.fingerprint,
            principal: Some(Principal {
                id: id.principal,
                consumer: id.consumer,
                scopes: id.scopes.unwrap_or_else(|| Arc::from(Vec::<String>::new())),
            }),
        }
    }

    /// Any number of satisfying credentials (`any_of`, `all_of`, public).
    fn many(policy: &CompiledPolicy, route: &CompiledRoute, mut satisfied: Satisfied) -> Self {
        let scopes_ok = scopes_held(policy, route, || {
            satisfied.iter().filter_map(|(_, id)| id.scopes.as_deref())
        });
        let credential = credential_names(policy, &satisfied);
        // What the rate limit needs from the identities, taken before
        // `principal_of` moves them into the principal.
        let over = satisfied.iter().find_map(|(_, id)| id.rate_override);
        let first_cred = match &route.limit {
            Some(l) if l.key == RateKey::Credential => {
                satisfied.first().map(|(_, id)| Arc::clone(&id.principal))
            }
            _ => None,
        };
        // Moved out rather than cloned: the identities are consumed below.
        let fingerprint = satisfied
            .iter_mut()
            .find_map(|(_, id)| id.fingerprint.take());
        Granted {
            scopes_ok,
            credential,
            principal: principal_of(satisfied),
            fingerprint,
            over,
            first_cred,
        }
    }
}

/// The scope check, the rate limit and the allow, once the requirement is met.
fn finish(
    policy: &CompiledPolicy,
    limiter: &dyn Limiter,
    req: &Request,
    route: &CompiledRoute,
    trace: &mut Trace,
    g: Granted,
) -> Decision {
    if !g.scopes_ok {
        trace.note(|| format!("scopes not held: route needs `{}`", route.scope_names));
        let mut d = Decision::deny(Reason::InsufficientScope);
        d.route = Some(Arc::clone(&route.name));
        d.credential = g.credential;
        d.principal = g.principal;
        d.fingerprint = g.fingerprint;
        add_challenge(&mut d, route);
        return d;
    }

    let mut ratelimit = None;
    if let Some(limit) = &route.limit {
        let key = bucket(limit.key, req, g.first_cred, g.principal.as_ref());
        let owned;
        let (spec, id): (&LimitSpec, u64) = match g.over {
            Some(o) => {
                owned = LimitSpec {
                    name: Arc::clone(&limit.spec.name),
                    limit: o.limit,
                    per: o.per,
                    burst: o.burst,
                };
                (&owned, owned.id())
            }
            None => (&limit.spec, limit.id),
        };
        let r = limiter.check(spec, id, &key);
        let status = RateLimitStatus {
            limit: r.limit,
            remaining: r.remaining,
            reset_after_ms: u64::try_from(r.reset_after.as_millis()).unwrap_or(u64::MAX),
        };
        ratelimit = Some(status);
        if !r.allowed {
            trace.note(|| format!("rate limit `{}` exhausted", spec.name));
            let mut d = Decision::deny(Reason::RateLimited);
            d.route = Some(Arc::clone(&route.name));
            d.credential = g.credential;
            d.principal = g.principal;
            d.fingerprint = g.fingerprint;
            d.ratelimit = ratelimit;
            let secs = r.retry_after.as_millis().div_ceil(1000).max(1);
            d.headers
                .push((Arc::from("retry-after"), Arc::from(secs.to_string())));
            return d;
        }
    }

    trace.note(|| "allowed".to_string());
    // Built whole, as `deny(Allowed).with_allow()` plus fields would be,
    // without writing each field twice.
    Decision {
        allow: true,
        status: Reason::Allowed.status(),
        reason: Reason::Allowed,
        route: Some(Arc::clone(&route.name)),
        credential: g.credential,
        principal: g.principal,
        headers: Vec::new(),
        identity_names: Some(Arc::clone(&policy.identity)),
        ratelimit,
        fingerprint: g.fingerprint,
        trace: None,
    }
}

/// The principal: a user-level credential (JWT, mTLS, Basic) over an API key
/// when both satisfied (`all_of: [app_key, user_jwt]`); the consumer from the key.
/// Takes the identities so the common single-credential case moves its ids
/// into the principal instead of cloning them.
fn principal_of(satisfied: Satisfied) -> Option<Principal> {
    if satisfied.len() == 1 {
        let (_, one) = satisfied.into_iter().next()?;
        return Some(Principal {
            id: one.principal,
            consumer: one.consumer,
            scopes: one
                .scopes
                .unwrap_or_else(|| Arc::from(Vec::<String>::new())),
        });
    }
    let carrying: SmallVec<[&Arc<[String]>; 2]> = satisfied
        .iter()
        .filter_map(|(_, id)| id.scopes.as_ref())
        .collect();
    let first = satisfied
        .iter()
        .map(|(_, id)| id)
        .find(|id| id.kind != CredentialType::ApiKey)
        .or_else(|| satisfied.first().map(|(_, id)| id))?;
    let consumer = satisfied.iter().find_map(|(_, id)| id.consumer.clone());
    let scopes: Arc<[String]> = match carrying.as_slice() {
        [] => Arc::from(Vec::<String>::new()),
        [one] => Arc::clone(one),
        [head, rest @ ..] => head
            .iter()
            .filter(|s| rest.iter().all(|o| o.contains(s)))
            .cloned()
            .collect::<Vec<_>>()
            .into(),
    };
    Some(Principal {
        id: Arc::clone(&first.principal),
        consumer,
        scopes,
    })
}

/// Most string comparisons (required names times held names) for which
/// comparing beats interning: interning hashes every held scope.
const DIRECT_SCOPE_WORK: usize = 16;

/// Do the satisfying credentials hold the route's scopes? Every credential
/// that carries scopes must hold them (their intersection is what counts);
/// one that carries none does not restrict, and none carrying any is a deny.
/// `carrying` lists the scope lists of the credentials that carry one.
fn scopes_held<'a, I>(
    policy: &CompiledPolicy,
    route: &CompiledRoute,
    carrying: impl Fn() -> I,
) -> bool
where
    I: Iterator<Item = &'a [String]>,
{
    let (need, all_needed) = match &route.scopes {
        ScopeCheck::None => return true,
        ScopeCheck::AllOf(need) => (need, true),
        ScopeCheck::AnyOf(need) => (need, false),
    };
    if carrying().next().is_none() {
        return false;
    }
    let held: usize = carrying().map(<[String]>::len).sum();
    if route.scope_list.len().saturating_mul(held) <= DIRECT_SCOPE_WORK {
        // Exact name equality, as interning is: the same answer, no hashing.
        let held_by_all = |name: &str| carrying().all(|c| c.iter().any(|s| s == name));
        let mut names = route.scope_list.iter().map(|n| held_by_all(n));
        return if all_needed {
            names.all(|h| h)
        } else {
            names.any(|h| h)
        };
    }
    let Some(have) = carrying()
        .map(|s| policy.scope_set(s.iter()))
        .reduce(|a, b| a.and(&b))
    else {
        return false;
    };
    if all_needed {
        have.contains_all(need)
    } else {
        have.intersects(need)
    }
}

fn credential_names(policy: &CompiledPolicy, satisfied: &[(usize, Identity)]) -> Option<Arc<str>> {
    match satisfied {
        [] => None,
        [(i, _)] => policy.credentials.get(*i).map(|c| Arc::clone(&c.name)),
        many => Some(
            many.iter()
                .filter_map(|(i, _)| policy.credentials.get(*i).map(|c| c.name.to_string()))
                .collect::<Vec<_>>()
                .join("+")
                .into(),
        ),
    }
}

/// The bucket key for a limit. Requests with no identity (public routes)
/// fall back to the client address.
fn bucket(
    key: RateKey,
    req: &Request,
    first_cred: Option<Arc<str>>,
    principal: Option<&Principal>,
) -> BucketKey {
    let ip = || {
        req.source_ip
            .map(BucketKey::Ip)
            .unwrap_or(BucketKey::UnknownIp)
    };
    match key {
        RateKey::SourceIp => ip(),
        RateKey::Consumer => match principal {
            Some(p) => BucketKey::Text(p.consumer.clone().unwrap_or_else(|| Arc::clone(&p.id))),
            None => ip(),
        },
        RateKey::Principal => principal
            .map(|p| BucketKey::Text(Arc::clone(&p.id)))
            .unwrap_or_else(ip),
        RateKey::Credential => first_cred.map(BucketKey::Text).unwrap_or_else(ip),
    }
}

fn add_challenge(d: &mut Decision, route: &CompiledRoute) {
    let value = match d.reason {
        Reason::InsufficientScope if route.bearer => {
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"{}\"",
                route.scope_names
            )
        }
        r if r.status() == 401 => {
            let invalid = matches!(
                r,
                Reason::CredentialInvalid | Reason::CredentialExpired | Reason::CredentialRevoked
            );
            let parts: Vec<String> = route
                .challenges
                .iter()
                .map(|c| match c {
                    Challenge::Bearer if invalid => {
                        "Bearer realm=\"portcullis\", error=\"invalid_token\"".to_string()
                    }
                    Challenge::Bearer => "Bearer realm=\"portcullis\"".to_string(),
                    Challenge::ApiKey => "ApiKey realm=\"portcullis\"".to_string(),
                    Challenge::Basic(realm) => {
                        format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")
                    }
                })
                .collect();
            if parts.is_empty() {
                // mTLS-only routes: no HTTP scheme can answer, but a 401 must still name one.
                "ClientCertificate realm=\"portcullis\"".to_string()
            } else {
                parts.join(", ")
            }
        }
        _ => return,
    };
    d.headers
        .push((Arc::from("www-authenticate"), Arc::from(value)));
}
