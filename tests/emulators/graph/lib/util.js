'use strict';
// Small helpers shared by the login and Graph halves of the emulator.
const crypto = require('crypto');

const uuid = () => crypto.randomUUID();

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

function b64urlJson(obj) {
  return b64url(Buffer.from(JSON.stringify(obj), 'utf8'));
}

function fromB64urlJson(s) {
  return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

// Graph's innerError.date: "2026-01-01T00:00:00" (UTC, no fraction, no zone).
function graphDate(ms = Date.now()) {
  return new Date(ms).toISOString().slice(0, 19);
}

// DateTimeOffset values as Graph renders them: "2026-01-01T00:00:00Z".
function isoSeconds(ms = Date.now()) {
  return new Date(ms).toISOString().slice(0, 19) + 'Z';
}

// AADSTS timestamp: "2026-01-01 00:00:00Z".
function aadTimestamp(ms = Date.now()) {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ') + 'Z';
}

// .NET-style 7-digit fraction used inside some AADSTS messages.
function aadLongTime(ms) {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$10000Z');
}

class BodyTooLarge extends Error {}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new BodyTooLarge('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = {
  uuid, b64url, b64urlJson, fromB64urlJson, graphDate, isoSeconds, aadTimestamp, aadLongTime,
  readBody, BodyTooLarge, sleep,
};
