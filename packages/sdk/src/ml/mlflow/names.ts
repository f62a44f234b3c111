import { z } from 'zod';

/** A registered model's name (MLflow allows most characters; we refuse "/" and whitespace at the ends). */
export const ModelName = z
  .string()
  .min(1, 'expected a registered model name such as "generation_model"')
  .max(256)
  .refine(
    (s) => s.trim() === s && !s.includes('/'),
    'expected a model name without "/" or surrounding spaces',
  );

/** An alias: MLflow allows letters, digits, "_" and "-", and reserves `latest` and `v<number>`. */
export const AliasName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,255}$/, 'expected an alias of letters, digits, "_" or "-", e.g. "champion"')
  .refine(
    (s) => s.toLowerCase() !== 'latest' && !/^v\d+$/i.test(s),
    'the aliases "latest" and "v<number>" are reserved by MLflow',
  );

/** A version number, as a number or MLflow's string form. */
export const VersionNumber = z
  .union([
    z.string().regex(/^[1-9]\d*$/, 'expected a version number such as "3"'),
    z.number().int().positive(),
  ])
  .transform(String);
