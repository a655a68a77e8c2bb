//! Game templates (issue 16): what a Pterodactyl/Pelican egg holds, for a
//! GameServer to name and fill in. So far: an egg read into one shape
//! whatever its format ([`egg`]), and the rules its variables are checked by
//! ([`rules`]).

pub mod egg;
pub mod rules;
