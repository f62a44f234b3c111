/** @aiwebtest/runbooks/notify (being built). */
export {};
