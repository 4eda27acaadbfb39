//! A worker's connections, addressed by tokens that carry a generation, so an event for a
//! connection that was dropped and whose slot was reused is recognised as stale.

use crate::bench::conn::Conn;

#[derive(Default)]
pub(super) struct Slots {
    pub(super) conns: Vec<Option<Conn>>,
    generations: Vec<u32>,
    free: Vec<u32>,
}

fn token(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

impl Slots {
    pub(super) fn insert(&mut self, conn: Conn) -> u64 {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.conns.push(None);
                self.generations.push(0);
                (self.conns.len() - 1) as u32
            }
        };
        self.conns[index as usize] = Some(conn);
        token(index, self.generations[index as usize])
    }

    pub(super) fn get(&mut self, token: u64) -> Option<&mut Conn> {
        let index = token as u32 as usize;
        if self.generations.get(index) != Some(&((token >> 32) as u32)) {
            return None;
        }
        self.conns[index].as_mut()
    }

    pub(super) fn remove(&mut self, token: u64) -> Option<Conn> {
        let index = token as u32;
        let conn = self
            .get(token)
            .is_some()
            .then(|| self.conns[index as usize].take())??;
        self.generations[index as usize] = self.generations[index as usize].wrapping_add(1);
        self.free.push(index);
        Some(conn)
    }

    pub(super) fn tokens(&self) -> impl Iterator<Item = u64> + '_ {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| token(i as u32, self.generations[i]))
    }
}
