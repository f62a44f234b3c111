/**
 * The runbooks of the browser tests' service: the component tests' three (src/test/runbooks.mjs) and the
 * ones only the browser tests drive (a destructive `purge-queue`). A separate module so that the component
 * tests' service keeps listing exactly its three.
 */
import { browserTestRunbooks, runbooks as componentTestRunbooks } from '../src/test/runbooks.mjs';

export const runbooks = [...componentTestRunbooks, ...browserTestRunbooks];
