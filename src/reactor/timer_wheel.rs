//! A hashed timer wheel: one deadline per connection key, O(1) schedule/cancel, and expiry that
//! touches only the slot of each elapsed tick.
//!
//! Nodes are indexed by slab key and linked into per-slot intrusive lists, so arming a timer
//! never allocates (the node table grows only with the slab's high-water mark). Ticks are `u32`
//! and compared with wrapping arithmetic: at 100 ms per tick they wrap after ~13 years.

const NIL: u32 = u32::MAX;
/// `prev` of a node that is not armed.
const UNARMED: u32 = u32::MAX - 1;

#[derive(Clone, Copy)]
struct Node {
    next: u32,
    /// Previous key in the slot list, `NIL` for the head, `UNARMED` when not in the wheel.
    prev: u32,
    deadline: u32,
}

const IDLE_NODE: Node = Node {
    next: NIL,
    prev: UNARMED,
    deadline: 0,
};

/// The wheel. `slots` is a power of two; deadlines further away than `slots` ticks are kept and
/// skipped until their round comes, so the horizon is unbounded but costs a revisit per round.
pub struct TimerWheel {
    heads: Box<[u32]>,
    nodes: Vec<Node>,
    /// The last tick whose slot was processed.
    current: u32,
    armed: usize,
}

/// `a <= b` on wrapping ticks.
fn reached(deadline: u32, now: u32) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

impl TimerWheel {
    pub fn new(slots: usize, now_tick: u32) -> TimerWheel {
        assert!(
            slots.is_power_of_two(),
            "timer wheel slots must be a power of two"
        );
        TimerWheel {
            heads: vec![NIL; slots].into_boxed_slice(),
            nodes: Vec::new(),
            current: now_tick,
            armed: 0,
        }
    }

    fn slot_of(&self, tick: u32) -> usize {
        tick as usize & (self.heads.len() - 1)
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.armed
    }

    pub fn is_empty(&self) -> bool {
        self.armed == 0
    }

    /// The deadline of `key`, if armed.
    pub fn deadline(&self, key: u32) -> Option<u32> {
        let node = self.nodes.get(key as usize)?;
        (node.prev != UNARMED).then_some(node.deadline)
    }

    /// Arms (or re-arms) the timer of `key` for `deadline_tick`. A deadline at or before the
    /// current tick fires on the next `advance`.
    pub fn schedule(&mut self, key: u32, deadline_tick: u32) {
        debug_assert!(key < UNARMED, "slab key out of the wheel's range");
        if self.nodes.len() <= key as usize {
            self.nodes.resize(key as usize + 1, IDLE_NODE);
        }
        self.cancel(key);
        let next_tick = self.current.wrapping_add(1);
        let effective = if reached(deadline_tick, self.current) {
            next_tick
        } else {
            deadline_tick
        };
        let slot = self.slot_of(effective);
        let head = self.heads[slot];
        self.nodes[key as usize] = Node {
            next: head,
            prev: NIL,
            deadline: effective,
        };
        if head != NIL {
            self.nodes[head as usize].prev = key;
        }
        self.heads[slot] = key;
        self.armed += 1;
    }

    /// Disarms the timer of `key` (no-op when not armed).
    pub fn cancel(&mut self, key: u32) {
        let Some(node) = self.nodes.get(key as usize).copied() else {
            return;
        };
        if node.prev == UNARMED {
            return;
        }
        if node.prev == NIL {
            let slot = self.slot_of(node.deadline);
            debug_assert_eq!(self.heads[slot], key);
            self.heads[slot] = node.next;
        } else {
            self.nodes[node.prev as usize].next = node.next;
        }
        if node.next != NIL {
            self.nodes[node.next as usize].prev = node.prev;
        }
        self.nodes[key as usize] = IDLE_NODE;
        self.armed -= 1;
    }

    /// Processes every tick up to and including `now_tick`, appending the keys whose deadline has
    /// come to `expired` (they are disarmed). Work is proportional to the timers in the elapsed
    /// slots, never to the number of armed timers, unless a whole revolution elapsed at once.
    pub fn advance(&mut self, now_tick: u32, expired: &mut Vec<u32>) {
        let elapsed = now_tick.wrapping_sub(self.current);
        if elapsed as i32 <= 0 {
            return;
        }
        let steps = (elapsed as usize).min(self.heads.len());
        for step in 1..=steps {
            let slot = self.slot_of(self.current.wrapping_add(step as u32));
            let mut key = self.heads[slot];
            while key != NIL {
                let node = self.nodes[key as usize];
                if reached(node.deadline, now_tick) {
                    self.cancel(key);
                    expired.push(key);
                }
                key = node.next;
            }
        }
        self.current = now_tick;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut TimerWheel, now: u32) -> Vec<u32> {
        let mut out = Vec::new();
        w.advance(now, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let mut w = TimerWheel::new(8, 0);
        w.schedule(3, 5);
        assert_eq!(fire(&mut w, 4), Vec::<u32>::new());
        assert_eq!(w.deadline(3), Some(5));
        assert_eq!(fire(&mut w, 5), vec![3]);
        assert_eq!(w.deadline(3), None);
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_beyond_one_revolution_wait_their_round() {
        let mut w = TimerWheel::new(4, 0);
        w.schedule(1, 10); // slot 2, two rounds ahead
        assert!(fire(&mut w, 2).is_empty());
        assert!(fire(&mut w, 6).is_empty());
        assert_eq!(fire(&mut w, 10), vec![1]);
    }

    #[test]
    fn a_jump_over_many_ticks_fires_everything_due() {
        let mut w = TimerWheel::new(8, 0);
        for k in 0..20 {
            w.schedule(k, k + 1);
        }
        assert_eq!(fire(&mut w, 100), (0..20).collect::<Vec<_>>());
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn cancel_and_reschedule_unlink_correctly() {
        let mut w = TimerWheel::new(8, 0);
        // Three keys in the same slot: cancel the middle, head and tail in turn.
        w.schedule(1, 3);
        w.schedule(2, 3);
        w.schedule(3, 3);
        w.cancel(2);
        assert_eq!(w.len(), 2);
        w.schedule(1, 7); // move the tail elsewhere
        assert_eq!(fire(&mut w, 3), vec![3]);
        assert_eq!(fire(&mut w, 7), vec![1]);
        w.cancel(1); // cancelling a fired timer is a no-op
        w.cancel(99); // and so is an unknown key
        assert!(w.is_empty());
    }

    #[test]
    fn past_deadlines_fire_on_the_next_advance() {
        let mut w = TimerWheel::new(8, 50);
        w.schedule(4, 10);
        assert_eq!(fire(&mut w, 51), vec![4]);
    }

    #[test]
    fn ticks_wrap_around_u32() {
        let start = u32::MAX - 2;
        let mut w = TimerWheel::new(8, start);
        w.schedule(0, start.wrapping_add(5));
        assert!(fire(&mut w, start.wrapping_add(4)).is_empty());
        assert_eq!(fire(&mut w, start.wrapping_add(5)), vec![0]);
    }

    #[test]
    fn matches_a_naive_model_under_random_operations() {
        // xorshift: deterministic, no dependency.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut w = TimerWheel::new(16, 0);
        let mut model: Vec<Option<u32>> = vec![None; 64];
        let mut now = 0u32;
        for _ in 0..20_000 {
            let key = (rnd() % 64) as u32;
            match rnd() % 4 {
                0 | 1 => {
                    let d = now + 1 + (rnd() % 40) as u32;
                    w.schedule(key, d);
                    model[key as usize] = Some(d);
                }
                2 => {
                    w.cancel(key);
                    model[key as usize] = None;
                }
                _ => {
                    now += (rnd() % 5) as u32;
                    let got = fire(&mut w, now);
                    let mut want: Vec<u32> = Vec::new();
                    for (k, d) in model.iter_mut().enumerate() {
                        if matches!(d, Some(d) if *d <= now) {
                            want.push(k as u32);
                            *d = None;
                        }
                    }
                    assert_eq!(got, want, "at tick {now}");
                }
            }
            assert_eq!(w.len(), model.iter().filter(|d| d.is_some()).count());
        }
    }
}
