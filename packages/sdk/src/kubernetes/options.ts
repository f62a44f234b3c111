import { z } from 'zod';

/** A namespace name (an RFC 1123 label). */
export const NamespaceName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a namespace name (lowercase letters, digits and "-")');

/** An object name (an RFC 1123 subdomain). */
export const ObjectName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'expected an object name (lowercase letters, digits, "-" and ".")',
  );

/** `Deployment` or `StatefulSet`. */
export const WorkloadKindSchema = z.enum(['Deployment', 'StatefulSet']);
