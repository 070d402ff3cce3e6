// kafkajs scenarios against `streamlab serve`, driven by tests/server/test_kafkajs.py.
//
//   node scenario.js <name> '<json arguments>'
//
// Each scenario prints one JSON object on stdout and exits 0; any failure prints the error
// on stderr and exits 1. A scenario that outlives its `timeoutMs` exits 3 by itself, so a
// hung client never hangs the test run (pytest also kills it after its own deadline).
// KAFKAJS_DEBUG=1 turns on kafkajs's debug log (stderr), the first place to look when a
// request fails against serve.
'use strict'

const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const [name, rawArgs] = process.argv.slice(2)
const args = JSON.parse(rawArgs || '{}')

setTimeout(() => {
  console.error(`scenario ${name} did not finish in ${args.timeoutMs || 20000} ms`)
  process.exit(3)
}, args.timeoutMs || 20000).unref()

const kafka = new Kafka({
  clientId: args.clientId || `kafkajs-${name}`,
  brokers: [args.bootstrap],
  // {mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512', username, password}
  sasl: args.sasl,
  // TLS trusting only the CA in the PEM file `ca`
  ssl: args.ca ? { ca: [require('fs').readFileSync(args.ca, 'utf8')] } : undefined,
  logLevel: process.env.KAFKAJS_DEBUG ? logLevel.DEBUG : logLevel.ERROR,
  // every log line to stderr (kafkajs's own logger puts INFO and DEBUG on stdout, where
  // the results go)
  logCreator: () => ({ namespace, level, label, log }) => {
    const { message, ...extra } = log
    console.error(`[${label}] ${namespace || "kafkajs"}: ${message} ${JSON.stringify(extra)}`)
  },
  // the defaults (300 ms backoff doubling to 30 s) would wait past the test's deadline
  retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: args.retries || 8 },
})

const str = (buffer) => (buffer === null || buffer === undefined ? null : buffer.toString())

function headersOf(message) {
  const out = {}
  for (const [key, value] of Object.entries(message.headers || {})) out[key] = str(value)
  return out
}

function record(topic, partition, message) {
  return {
    topic,
    partition,
    offset: Number(message.offset),
    timestamp: Number(message.timestamp),
    key: str(message.key),
    value: str(message.value),
    headers: headersOf(message),
  }
}

function nextLine() {
  return new Promise((resolve) => {
    process.stdin.once('data', resolve)
    process.stdin.resume()
  }).then((data) => {
    process.stdin.pause() // or the open stdin would keep node from exiting
    return data
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(check, what, ms = 15000) {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

// Consume `topics` in group `groupId` from the earliest offset until `count` records came
// (then `settleMs` more, to catch any extra), with kafkajs's own commits after every
// resolved offset (`autoCommitThreshold: 1`: also past batches that hold only transaction
// markers or aborted records). Returns the records and, per partition, the last offset
// kafkajs resolved (a control batch's too).
async function consumeAll({ groupId, topics, count, readUncommitted = false, settleMs = 300 }) {
  const consumer = kafka.consumer({ groupId, readUncommitted, maxWaitTimeInMs: 100 })
  const got = []
  const lastOffsets = {}
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    lastOffsets[`${payload.topic}/${payload.partition}`] = Number(payload.lastOffset)
  })
  await consumer.connect()
  try {
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      autoCommitThreshold: 1,
      eachMessage: async ({ topic, partition, message }) => {
        got.push(record(topic, partition, message))
      },
    })
    await until(() => got.length >= count, `${count} records (have ${got.length})`)
    await sleep(settleMs)
  } finally {
    await consumer.disconnect()
  }
  return { got, lastOffsets }
}

const scenarios = {
  // CreateTopics, a second create of the same name, Metadata, ListOffsets, CreatePartitions,
  // DescribeConfigs, describeCluster (from Metadata), DeleteTopics.
  async admin({ topics, grow, remove }) {
    const admin = kafka.admin()
    await admin.connect()
    try {
      const created = await admin.createTopics({ topics, waitForLeaders: true })
      const createdAgain = await admin.createTopics({ topics: [topics[0]] })
      const names = topics.map((t) => t.topic)
      if (grow) await admin.createPartitions({ topicPartitions: [grow] })
      const metadata = await admin.fetchTopicMetadata({ topics: names })
      const offsets = {}
      for (const topic of names) offsets[topic] = await admin.fetchTopicOffsets(topic)
      const configs = await admin.describeConfigs({
        resources: [{ type: 2 /* TOPIC */, name: names[0] }],
        includeSynonyms: false,
      })
      const cluster = await admin.describeCluster()
      const listed = await admin.listTopics()
      if (remove) await admin.deleteTopics({ topics: [remove] })
      const afterDelete = await admin.listTopics()
      return { created, createdAgain, listed, afterDelete, metadata, offsets, configs, cluster }
    } finally {
      await admin.disconnect()
    }
  },

  // One producer (idempotent or not) sends `messages`, `batchSize` per send() (one record
  // batch per partition each); returns what the broker acknowledged for each. With
  // `pauseAfter: n` it prints {"paused": n} after n messages and waits for a line on stdin
  // before going on with the same producer (the test restarts serve meanwhile).
  async produce({ topic, messages, batchSize = 50, idempotent = false, compression = 'none', acks = -1, pauseAfter }) {
    const producer = kafka.producer({ idempotent, maxInFlightRequests: idempotent ? 1 : undefined })
    await producer.connect()
    const acked = []
    try {
      for (let i = 0; i < messages.length; i += batchSize) {
        if (i === pauseAfter) {
          process.stdout.write(JSON.stringify({ paused: i }) + '\n')
          await nextLine()
        }
        const sent = await producer.send({
          topic,
          acks,
          compression: compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
          messages: messages.slice(i, i + batchSize),
        })
        for (const meta of sent) {
          acked.push({ partition: meta.partition, baseOffset: Number(meta.baseOffset), errorCode: meta.errorCode })
        }
      }
    } finally {
      await producer.disconnect()
    }
    return { acked }
  },

  // A group of `members` consumers in this one process shares `topic`. Once every member
  // holds partitions, `count` keyed records are produced and consumed, each batch
  // committed with commitOffsets. Then every member but the first leaves (LeaveGroup), and
  // once the first holds every partition, `count` more are produced and consumed: from the
  // committed offsets, so nothing twice. Returns who got what in which phase. At the end
  // the admin client sets partition 0's offset to 5 (OffsetCommit from outside the group).
  async group({ topic, groupId, members, partitions, count }) {
    const consumers = []
    const got = []
    const assigned = new Map()
    let phase = 1
    for (let m = 0; m < members; m++) {
      const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, heartbeatInterval: 300 })
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        assigned.set(m, payload.memberAssignment[topic] || []) // the latest generation's wins
      })
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      consumers.push(consumer)
    }
    for (let m = 0; m < members; m++) {
      const consumer = consumers[m]
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          for (const message of batch.messages) {
            got.push({ member: m, phase, ...record(batch.topic, batch.partition, message) })
          }
          await consumer.commitOffsets([
            { topic: batch.topic, partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) },
          ])
        },
      })
    }
    const holding = (who) => () => {
      const parts = who.map((m) => (assigned.get(m) || []).length)
      return parts.every((n) => n > 0) && parts.reduce((x, y) => x + y, 0) === partitions
    }
    const produce = async (from) => {
      const producer = kafka.producer()
      await producer.connect()
      const messages = []
      for (let i = from; i < from + count; i++) messages.push({ key: `user-${i % 13}`, value: `event-${i}` })
      await producer.send({ topic, messages })
      await producer.disconnect()
    }

    const everyone = [...Array(members).keys()]
    await until(holding(everyone), `all ${members} members holding partitions`)
    const owners = Object.fromEntries(everyone.map((m) => [m, assigned.get(m)]))
    await produce(0)
    await until(() => got.length >= count, `${count} records (have ${got.length})`)
    const admin = kafka.admin()
    await admin.connect()
    const described = await admin.describeGroups([groupId])

    for (const consumer of consumers.slice(1)) await consumer.disconnect()
    await until(holding([0]), 'the first member holding every partition')
    phase = 2
    await produce(count)
    await until(() => got.length >= 2 * count, `${2 * count} records (have ${got.length})`)
    await sleep(300) // anything delivered twice would come now
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
    await consumers[0].disconnect()
    // an operator moves the now empty group's partition 0 back to offset 5
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '5' }] })
    const afterSet = await admin.fetchOffsets({ groupId, topics: [topic] })
    await admin.disconnect()
    return { got, owners, committed, described, afterSet }
  },

  // A later member of the same group resumes from the committed offsets.
  async resume({ topic, groupId, count }) {
    return await consumeAll({ groupId, topics: [topic], count })
  },

  // Transactions: one committed, one aborted, one committed, each also committing the
  // offsets of consumer group `${transactionalId}-app` (consume-transform-produce's
  // sendOffsets). While the first is open, a plain producer writes `plain-*` and a second
  // transactional producer writes `other-*` and aborts, so the partitions interleave
  // committed, aborted and non-transactional batches. Then a read_committed and a
  // read_uncommitted consumer read the topic.
  async transactions({ topic, transactionalId, count }) {
    const producer = kafka.producer({ transactionalId, maxInFlightRequests: 1, idempotent: true })
    const other = kafka.producer({ transactionalId: `${transactionalId}-other`, maxInFlightRequests: 1, idempotent: true })
    const plain = kafka.producer()
    const appGroup = `${transactionalId}-app`
    const messages = (label) => [...Array(count).keys()].map((i) => ({ key: `k${i % 3}`, value: `${label}-${i}` }))
    await Promise.all([producer.connect(), other.connect(), plain.connect()])
    try {
      const plan = [['first', 'commit', 3], ['aborted', 'abort', 100], ['second', 'commit', 7]]
      for (const [label, outcome, inputOffset] of plan) {
        const txn = await producer.transaction()
        const half = count / 2
        await txn.send({ topic, messages: messages(label).slice(0, half) })
        if (label === 'first') {
          const otherTxn = await other.transaction()
          await otherTxn.send({ topic, messages: messages('other') })
          await plain.send({ topic, messages: messages('plain') })
          await txn.send({ topic, messages: messages(label).slice(half) })
          await otherTxn.abort()
        } else {
          await txn.send({ topic, messages: messages(label).slice(half) })
        }
        await txn.sendOffsets({
          consumerGroupId: appGroup,
          topics: [{ topic, partitions: [{ partition: 0, offset: String(inputOffset) }] }],
        })
        await (outcome === 'commit' ? txn.commit() : txn.abort())
      }
    } finally {
      await Promise.all([producer.disconnect(), other.disconnect(), plain.disconnect()])
    }
    const committed = await consumeAll({ groupId: `${transactionalId}-rc`, topics: [topic], count: 3 * count })
    const uncommitted = await consumeAll({ groupId: `${transactionalId}-ru`, topics: [topic], count: 5 * count, readUncommitted: true })
    const admin = kafka.admin()
    await admin.connect()
    const appOffsets = await admin.fetchOffsets({ groupId: appGroup, topics: [topic] })
    await admin.disconnect()
    return { committed, uncommitted, appOffsets }
  },

  // A second producer with the same transactionalId fences the first: InitProducerId bumps
  // the epoch and aborts the transaction the first left open; the first's next send and
  // its commit fail. A read_committed consumer then sees only the second's records.
  async fencing({ topic, transactionalId }) {
    const options = { transactionalId, maxInFlightRequests: 1, idempotent: true }
    const zombie = kafka.producer(options)
    const fresh = kafka.producer(options)
    const errors = {}
    await zombie.connect()
    await fresh.connect()
    try {
      const old = await zombie.transaction() // InitProducerId: epoch 0
      await old.send({ topic, messages: [{ value: 'zombie-1' }] })
      const txn = await fresh.transaction() // InitProducerId: epoch 1, aborts zombie-1
      for (const [what, step] of [
        ['send', () => old.send({ topic, messages: [{ value: 'zombie-2' }] })],
        ['commit', () => old.commit()],
      ]) {
        try {
          await step()
          errors[what] = null
        } catch (error) {
          errors[what] = error.type || error.name
        }
      }
      await txn.send({ topic, messages: [{ value: 'fresh-1' }] })
      await txn.commit()
    } finally {
      await zombie.disconnect().catch(() => {})
      await fresh.disconnect()
    }
    const { got } = await consumeAll({ groupId: `${transactionalId}-rc`, topics: [topic], count: 1 })
    return { errors, got }
  },

  // DeleteRecords moves the log start; a consumer seeking below it gets OFFSET_OUT_OF_RANGE
  // and resets to the earliest offset there is (fromBeginning).
  async deleteRecords({ topic, count, deleteBefore, seekTo }) {
    const producer = kafka.producer()
    await producer.connect()
    const messages = []
    for (let i = 0; i < count; i++) messages.push({ value: `record-${i}` })
    await producer.send({ topic, messages })
    await producer.disconnect()
    const admin = kafka.admin()
    await admin.connect()
    // kafkajs looks the partition's leader up in metadata it has not loaded yet
    await admin.fetchTopicMetadata({ topics: [topic] })
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: String(deleteBefore) }] })
    const offsets = await admin.fetchTopicOffsets(topic)
    await admin.disconnect()

    const consumer = kafka.consumer({ groupId: `${topic}-seek`, maxWaitTimeInMs: 100 })
    const got = []
    await consumer.connect()
    try {
      await consumer.subscribe({ topic, fromBeginning: true })
      await consumer.run({ eachMessage: async ({ message }) => { got.push(Number(message.offset)) } })
      consumer.seek({ topic, partition: 0, offset: String(seekTo) }) // below the log start
      await until(() => got.length >= count - deleteBefore, `${count - deleteBefore} records (have ${got.length})`)
      await sleep(200)
    } finally {
      await consumer.disconnect()
    }
    return { offsets, got }
  },

  // ListOffsets by timestamp, then a consumer seeks there.
  async seek({ topic, timestamp, expect }) {
    const admin = kafka.admin()
    await admin.connect()
    const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, timestamp)
    const late = await admin.fetchTopicOffsetsByTimestamp(topic, timestamp + 1e9)
    await admin.disconnect()

    const consumer = kafka.consumer({ groupId: `${topic}-seek`, maxWaitTimeInMs: 100 })
    const got = []
    await consumer.connect()
    try {
      await consumer.subscribe({ topic })
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ topic: t, partition, message }) => {
          got.push(record(t, partition, message))
        },
      })
      // seek() works once run() started; it applies as soon as the partition is assigned
      for (const { partition, offset } of byTime) consumer.seek({ topic, partition, offset })
      await until(() => got.length >= expect, `${expect} records after the seek (have ${got.length})`)
      await sleep(300)
    } finally {
      await consumer.disconnect()
    }
    return { byTime, late, got }
  },
}

const scenario = scenarios[name]
if (!scenario) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`)
  process.exit(2)
}
scenario(args).then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0))
  },
  (error) => {
    console.error(`scenario ${name} failed:`, error)
    process.exit(1)
  },
)
