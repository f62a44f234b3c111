/** @aiwebtest/runbooks/ml (being built). */
export {};
