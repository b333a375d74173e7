package io.decisionlake.delta;

import io.delta.storage.CloseableIterator;
import io.delta.storage.HadoopFileSystemLogStore;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.dynamodb.DynamoDbClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbClientBuilder;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;
import software.amazon.awssdk.services.dynamodb.model.ConditionalCheckFailedException;
import software.amazon.awssdk.services.dynamodb.model.PutItemRequest;
import software.amazon.awssdk.services.dynamodb.model.QueryRequest;
import software.amazon.awssdk.services.dynamodb.model.QueryResponse;

/**
 * Delta log store for S3 with more than one writing cluster: DynamoDB decides which writer owns
 * each commit file, because S3 has no put-if-absent that the S3A client uses.
 *
 * <p>The protocol and the table layout are those of Delta's S3DynamoDBLogStore (hash key
 * {@code tablePath}, range key {@code fileName}, attributes {@code tempPath}, {@code complete},
 * {@code expireTime}), so either store can read what the other wrote. It exists because that
 * store's jar is built on the AWS SDK v1 and is not in the project's package registry; this one
 * uses the SDK v2 that hadoop-aws 3.4 already brings, and takes an endpoint (the local stand-in).
 *
 * <p>A commit N.json: (1) finish the previous commit if its writer died between steps 3 and 4;
 * (2) write the actions to {@code _delta_log/.tmp/N.json.<uuid>}; (3) put the entry
 * {@code complete=false} on condition that none exists (a lost race is a
 * FileAlreadyExistsException, which Delta turns into conflict detection and a retry at N+1);
 * (4) copy the temporary file to N.json; (5) mark the entry complete with an expiry (DynamoDB
 * TTL can then drop it). Readers run step (1) before listing, so an interrupted commit is never
 * invisible for long and never lost.
 *
 * <p>Hadoop settings (give them as {@code spark.hadoop.<key>}): {@code
 * decisionlake.delta.dynamodb.table} (required), {@code .region} (default us-east-1), {@code
 * .endpoint} (optional: moto locally; the regional endpoint on AWS), {@code .expire-seconds}
 * (default 86400).
 */
public class DynamoDBLogStore extends HadoopFileSystemLogStore {
  static final String PREFIX = "decisionlake.delta.dynamodb.";
  private static final Pattern DELTA_FILE = Pattern.compile("\\d{20}\\.json");
  private static final Map<String, DynamoDbClient> CLIENTS = new ConcurrentHashMap<>();

  private final String table;
  private final DynamoDbClient client;
  private final long expireSeconds;

  public DynamoDBLogStore(Configuration hadoopConf) {
    super(hadoopConf);
    this.table = hadoopConf.getTrimmed(PREFIX + "table", "");
    if (table.isEmpty()) {
      throw new IllegalArgumentException(
          "DynamoDBLogStore needs spark.hadoop." + PREFIX + "table (the commit table's name)");
    }
    String region = hadoopConf.getTrimmed(PREFIX + "region", "us-east-1");
    String endpoint = hadoopConf.getTrimmed(PREFIX + "endpoint", "");
    this.expireSeconds = hadoopConf.getLong(PREFIX + "expire-seconds", 86400L);
    this.client = CLIENTS.computeIfAbsent(region + "|" + endpoint, key -> build(region, endpoint));
  }

  private static DynamoDbClient build(String region, String endpoint) {
    DynamoDbClientBuilder builder =
        DynamoDbClient.builder()
            .region(Region.of(region))
            .credentialsProvider(DefaultCredentialsProvider.create())
            .httpClientBuilder(ApacheHttpClient.builder());
    if (!endpoint.isEmpty()) {
      builder = builder.endpointOverride(URI.create(endpoint));
    }
    return builder.build();
  }

  @Override
  public Boolean isPartialWriteVisible(Path path, Configuration hadoopConf) {
    return false; // an S3 PUT is all or nothing
  }

  @Override
  public CloseableIterator<String> read(Path path, Configuration hadoopConf) throws IOException {
    return super.read(path, hadoopConf);
  }

  @Override
  public Iterator<FileStatus> listFrom(Path path, Configuration hadoopConf) throws IOException {
    FileSystem fs = path.getFileSystem(hadoopConf);
    Path logDir = fs.makeQualified(path).getParent();
    finishLatestCommit(fs, logDir);
    return super.listFrom(path, hadoopConf);
  }

  @Override
  public void write(Path path, Iterator<String> actions, Boolean overwrite, Configuration hadoopConf)
      throws IOException {
    FileSystem fs = path.getFileSystem(hadoopConf);
    Path target = fs.makeQualified(path);
    if (overwrite || !DELTA_FILE.matcher(target.getName()).matches()) {
      if (!overwrite && fs.exists(target)) {
        throw new FileAlreadyExistsException(target.toString());
      }
      writeFile(fs, target, actions, overwrite);
      return;
    }
    Path logDir = target.getParent();
    finishLatestCommit(fs, logDir);
    if (fs.exists(target)) {
      throw new FileAlreadyExistsException(target.toString());
    }
    String tempName = ".tmp/" + target.getName() + "." + UUID.randomUUID();
    Path temp = new Path(logDir, tempName);
    writeFile(fs, temp, actions, true);
    try {
      client.putItem(
          PutItemRequest.builder()
              .tableName(table)
              .item(entry(logDir, target.getName(), tempName, false))
              .conditionExpression("attribute_not_exists(fileName)")
              .build());
    } catch (ConditionalCheckFailedException lost) {
      fs.delete(temp, false);
      throw new FileAlreadyExistsException(target.toString());
    }
    copy(fs, temp, target);
    markComplete(logDir, target.getName(), tempName);
  }

  /** Completes the table's newest commit if its writer stopped after claiming it. */
  private void finishLatestCommit(FileSystem fs, Path logDir) throws IOException {
    QueryResponse latest =
        client.query(
            QueryRequest.builder()
                .tableName(table)
                .consistentRead(true)
                .keyConditionExpression("tablePath = :t")
                .expressionAttributeValues(Map.of(":t", text(tablePath(logDir))))
                .scanIndexForward(false)
                .limit(1)
                .build());
    List<Map<String, AttributeValue>> items = latest.items();
    if (items.isEmpty()) {
      return;
    }
    Map<String, AttributeValue> item = items.get(0);
    if ("true".equals(item.get("complete").s())) {
      return;
    }
    String fileName = item.get("fileName").s();
    String tempName = item.get("tempPath").s();
    Path target = new Path(logDir, fileName);
    if (!fs.exists(target)) {
      copy(fs, new Path(logDir, tempName), target);
    }
    markComplete(logDir, fileName, tempName);
  }

  private void markComplete(Path logDir, String fileName, String tempName) {
    Map<String, AttributeValue> item = new java.util.HashMap<>(entry(logDir, fileName, tempName, true));
    long expiry = System.currentTimeMillis() / 1000L + expireSeconds;
    item.put("expireTime", AttributeValue.builder().n(Long.toString(expiry)).build());
    client.putItem(PutItemRequest.builder().tableName(table).item(item).build());
  }

  private static Map<String, AttributeValue> entry(
      Path logDir, String fileName, String tempName, boolean complete) {
    return Map.of(
        "tablePath", text(tablePath(logDir)),
        "fileName", text(fileName),
        "tempPath", text(tempName),
        "complete", text(Boolean.toString(complete)));
  }

  private static String tablePath(Path logDir) {
    return logDir.getParent().toString();
  }

  private static AttributeValue text(String value) {
    return AttributeValue.builder().s(value).build();
  }

  private static void writeFile(FileSystem fs, Path path, Iterator<String> lines, boolean overwrite)
      throws IOException {
    try (FSDataOutputStream out = fs.create(path, overwrite)) {
      while (lines.hasNext()) {
        out.write((lines.next() + "\n").getBytes(StandardCharsets.UTF_8));
      }
    }
  }

  private static void copy(FileSystem fs, Path from, Path to) throws IOException {
    try (InputStream in = fs.open(from);
        OutputStream out = fs.create(to, true)) {
      in.transferTo(out);
    }
  }
}
