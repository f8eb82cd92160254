import { BadRequestException } from '@nestjs/common';

/**
 * Minimal request validation (the example has no class-validator): each helper returns the
 * checked value or throws a 400 naming the field.
 */

const ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export type RequestBody = Record<string, unknown>;

export function requireBody(body: unknown): RequestBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new BadRequestException('the body must be a JSON object');
  }
  return body as RequestBody;
}

/** An id such as a movieId, userId or sessionId: 1-64 letters, digits or `_.:-`. */
export function requireId(value: unknown, field: string): string {
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    throw new BadRequestException(`${field} must be 1-64 letters, digits or _.:- characters`);
  }
  return value;
}

export function optionalId(value: unknown, field: string): string | undefined {
  return value === undefined ? undefined : requireId(value, field);
}

export function requireText(value: unknown, field: string, maxLength: number): string {
  if (typeof value !== 'string' || value.trim() === '' || value.length > maxLength) {
    throw new BadRequestException(`${field} must be a non-empty string of at most ${maxLength} characters`);
  }
  return value;
}

export function optionalText(value: unknown, field: string, maxLength: number): string | undefined {
  return value === undefined ? undefined : requireText(value, field, maxLength);
}

export function optionalNonNegativeNumber(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new BadRequestException(`${field} must be a non-negative number`);
  }
  return value;
}

export function oneOf<const Allowed extends string>(
  value: unknown,
  field: string,
  allowed: readonly Allowed[],
): Allowed {
  if (typeof value !== 'string' || !allowed.includes(value as Allowed)) {
    throw new BadRequestException(`${field} must be one of ${allowed.join(', ')}`);
  }
  return value as Allowed;
}

export function optionalObject(value: unknown, field: string): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BadRequestException(`${field} must be an object`);
  }
  return value as Record<string, unknown>;
}

/** A query parameter holding an integer within `[min, max]`, or `fallback` when absent. */
export function integerQuery(value: string | undefined, field: string, min: number, max: number, fallback: number) {
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) {
    throw new BadRequestException(`${field} must be an integer from ${min} to ${max}`);
  }
  return number;
}
