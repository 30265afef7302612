//! Proof of work on everything that makes the server store something new: a
//! report, a follow-up, an upload (docs/api.md "Proof of work"). A flood
//! defence that needs no knowledge of who anyone is: no IP address, no
//! cookie, no account.
//!
//! The wire format is ALTCHA's SHA-256 challenge (altcha.org, "v1"): the
//! server picks a random `salt` and a secret `number` up to `maxnumber`,
//! sends `challenge = hex(SHA-256(salt ‖ number))` and an HMAC of it; the
//! client tries numbers from 0 until the hash matches and sends them back
//! in a `Meldkluis-Pow` header (base64 JSON). The HMAC key lives in memory
//! only; the salt carries its expiry. A solution is accepted once.
//!
//! Difficulty rises with load: `maxnumber` is `QUIET_MAX_NUMBER` times one
//! plus the number of solutions accepted in the last minute over
//! `SOLUTIONS_PER_STEP`, at most `MAX_FACTOR` times. A flood pays for every
//! request and makes the next ones dearer; a quiet server asks about
//! 25,000 hashes on average: 0.7 s expected in jitless Chromium on a 2-core
//! VM, 1.3 s with its CPU slowed 4× as a phone stand-in (benches/pow.mjs,
//! docs/performance.md; no phone measured).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `maxnumber` when the server is quiet: a client tries half of it on
/// average.
pub const QUIET_MAX_NUMBER: u64 = 50_000;
/// Accepted solutions per minute that add one `QUIET_MAX_NUMBER`.
pub const SOLUTIONS_PER_STEP: usize = 30;
/// The most `maxnumber` grows: 64 × quiet.
pub const MAX_FACTOR: u64 = 64;
/// How long a challenge may be answered.
pub const LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The header a solution travels in.
pub const HEADER: &str = "meldkluis-pow";

/// A challenge as `GET /api/v1/pow` answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    pub algorithm: String,
    pub challenge: String,
    pub maxnumber: u64,
    pub salt: String,
    pub signature: String,
}

/// A solution as the client sends it (base64 of this JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Solution {
    pub algorithm: String,
    pub challenge: String,
    pub number: u64,
    pub salt: String,
    pub signature: String,
}

/// Why a solution was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Meldkluis-Pow` header.
    Missing,
    /// Malformed, forged, wrong, expired or used before.
    Invalid,
}

pub struct Pow {
    key: [u8; 32],
    /// The most `maxnumber` grows, as a multiple of `QUIET_MAX_NUMBER`.
    max_factor: u64,
    /// Off only for benchmarks that measure the server without its
    /// clients' work (`set_required`); always on in `meldkluis serve`.
    required: std::sync::atomic::AtomicBool,
    /// When each recent solution was accepted (the last minute), for the
    /// difficulty. Times in memory only.
    recent: Mutex<VecDeque<Instant>>,
    /// Challenges answered and their expiry (unix seconds): each is
    /// accepted once.
    used: Mutex<HashMap<String, u64>>,
}

impl Default for Pow {
    fn default() -> Self {
        Self::new()
    }
}

impl Pow {
    pub fn new() -> Self {
        Self::with_max_factor(MAX_FACTOR)
    }

    /// Difficulty rising to at most `max_factor` × quiet (1 to `MAX_FACTOR`;
    /// the setting `pow_max_factor`).
    pub fn with_max_factor(max_factor: u64) -> Self {
        Self::with_key(rand::random(), max_factor)
    }

    /// With a given HMAC key: the same on every node behind one proxy
    /// (the setting `pow_key`), so a challenge from one node verifies on
    /// another (docs/postgresql.md).
    pub fn with_key(key: [u8; 32], max_factor: u64) -> Self {
        Pow {
            key,
            max_factor: max_factor.clamp(1, MAX_FACTOR),
            required: std::sync::atomic::AtomicBool::new(true),
            recent: Mutex::new(VecDeque::new()),
            used: Mutex::new(HashMap::new()),
        }
    }

    fn sign(&self, challenge: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(challenge.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The `maxnumber` a new challenge gets now.
    pub fn max_number(&self) -> u64 {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let minute_ago = Instant::now().checked_sub(Duration::from_secs(60));
        while recent
            .front()
            .is_some_and(|t| minute_ago.is_some_and(|m| *t < m))
        {
            recent.pop_front();
        }
        let factor = (1 + (recent.len() / SOLUTIONS_PER_STEP) as u64).min(self.max_factor);
        QUIET_MAX_NUMBER * factor
    }

    /// A new challenge.
    pub fn challenge(&self) -> Challenge {
        let maxnumber = self.max_number();
        let expires = now_unix() + LIFETIME.as_secs();
        let salt = format!(
            "{}?expires={expires}",
            hex::encode(rand::random::<[u8; 12]>())
        );
        let number = rand::random::<u64>() % (maxnumber + 1);
        let challenge = hash(&salt, number);
        Challenge {
            algorithm: "SHA-256".into(),
            signature: self.sign(&challenge),
            challenge,
            maxnumber,
            salt,
        }
    }

    /// Lets requests through without a proof of work (`false`): for the
    /// benchmarks of the server's own throughput only.
    pub fn set_required(&self, required: bool) {
        self.required
            .store(required, std::sync::atomic::Ordering::Relaxed);
    }

    /// Checks a `Meldkluis-Pow` header and, if it holds, counts it.
    pub fn verify(&self, header: Option<&str>) -> Result<(), Refusal> {
        if !self.required.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let header = header.ok_or(Refusal::Missing)?;
        let solution: Solution = STANDARD
            .decode(header.trim())
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(Refusal::Invalid)?;
        let expires = solution
            .salt
            .rsplit_once("?expires=")
            .and_then(|(_, t)| t.parse::<u64>().ok())
            .ok_or(Refusal::Invalid)?;
        let now = now_unix();
        let signed = self.sign(&solution.challenge);
        let genuine = solution.algorithm == "SHA-256"
            && constant_time_eq(signed.as_bytes(), solution.signature.as_bytes())
            && expires >= now
            && expires <= now + LIFETIME.as_secs()
            && hash(&solution.salt, solution.number) == solution.challenge;
        if !genuine {
            return Err(Refusal::Invalid);
        }
        {
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            if used.len() > 100_000 {
                used.retain(|_, expiry| *expiry >= now);
            }
            if used.insert(solution.challenge, expires).is_some() {
                return Err(Refusal::Invalid);
            }
        }
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Instant::now());
        Ok(())
    }
}

fn hash(salt: &str, number: u64) -> String {
    hex::encode(Sha256::digest(format!("{salt}{number}").as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Solves a challenge by trying every number (for tests and the operator's
/// own tools; the browser has web/js/pow.js). The salt is hashed once and
/// each number appended to a copy: most of the work stays in `sha2`.
pub fn solve(challenge: &Challenge) -> Option<String> {
    let target: [u8; 32] = hex::decode(&challenge.challenge).ok()?.try_into().ok()?;
    let salted = Sha256::new_with_prefix(challenge.salt.as_bytes());
    let mut digits = [0u8; 20];
    let number = (0..=challenge.maxnumber).find(|n| {
        let mut at = digits.len();
        let mut rest = *n;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        salted.clone().chain_update(&digits[at..]).finalize()[..] == target[..]
    })?;
    let solution = Solution {
        algorithm: challenge.algorithm.clone(),
        challenge: challenge.challenge.clone(),
        number,
        salt: challenge.salt.clone(),
        signature: challenge.signature.clone(),
    };
    Some(STANDARD.encode(serde_json::to_vec(&solution).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_is_accepted_once_and_nothing_else_is() {
        let pow = Pow::new();
        let challenge = pow.challenge();
        assert_eq!(challenge.maxnumber, QUIET_MAX_NUMBER);
        let header = solve(&challenge).unwrap();
        assert_eq!(pow.verify(None), Err(Refusal::Missing));
        assert_eq!(pow.verify(Some("not base64!")), Err(Refusal::Invalid));
        // Another server's challenge (another key) does not verify here.
        let foreign = solve(&Pow::new().challenge()).unwrap();
        assert_eq!(pow.verify(Some(&foreign)), Err(Refusal::Invalid));
        // A wrong number.
        let mut wrong: Solution =
            serde_json::from_slice(&STANDARD.decode(&header).unwrap()).unwrap();
        wrong.number += 1;
        let wrong = STANDARD.encode(serde_json::to_vec(&wrong).unwrap());
        assert_eq!(pow.verify(Some(&wrong)), Err(Refusal::Invalid));
        assert_eq!(pow.verify(Some(&header)), Ok(()));
        assert_eq!(pow.verify(Some(&header)), Err(Refusal::Invalid), "replay");
    }

    #[test]
    fn difficulty_rises_with_accepted_solutions() {
        let pow = Pow::new();
        for _ in 0..SOLUTIONS_PER_STEP * 2 {
            pow.recent.lock().unwrap().push_back(Instant::now());
        }
        assert_eq!(pow.max_number(), 3 * QUIET_MAX_NUMBER);
        for _ in 0..SOLUTIONS_PER_STEP * 1000 {
            pow.recent.lock().unwrap().push_back(Instant::now());
        }
        assert_eq!(pow.max_number(), MAX_FACTOR * QUIET_MAX_NUMBER);
    }
}
