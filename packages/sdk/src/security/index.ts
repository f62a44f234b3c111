/** @aiwebtest/runbooks/security (being built). */
export {};
