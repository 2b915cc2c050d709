// Render process `script:`/`stub:` blocks the way Nextflow evaluates them: the block is Groovy code
// whose last expression is the command string. Reads one JSON case per line on stdin:
//   { "code": str, "vals": {name: value}, "paths": {name: str | [str]}, "task": {...}, ... }
// and answers one JSON line {"text": rendered} or {"error": message} per case. Single path inputs
// are bound as java.nio Paths and multi-file inputs as a list that prints space-separated, as
// Nextflow's staged inputs do.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Paths

// Like Nextflow's nextflow.util.BlankSeparatedList: iterable (collect, size, join), interpolates as
// space-separated names. It is deliberately not a java.util.List, so that GStrings call toString().
class BlankSeparatedList implements Iterable {
    @Delegate(interfaces = false) List target
    BlankSeparatedList(Collection items) { target = new ArrayList(items) }
    Iterator iterator() { target.iterator() }
    boolean asBoolean() { !target.isEmpty() }
    String toString() { target.join(' ') }
}

def slurper = new JsonSlurper()
def reader = new BufferedReader(new InputStreamReader(System.in, 'UTF-8'))
String line
while ((line = reader.readLine()) != null) {
    def c = slurper.parseText(line)
    def binding = new Binding()
    c.vals.each { k, v -> binding.setVariable(k, v) }
    c.paths.each { k, v ->
        binding.setVariable(k, v instanceof List ? new BlankSeparatedList(v.collect { Paths.get(it) }) : Paths.get(v))
    }
    binding.setVariable('task', c.task)
    binding.setVariable('projectDir', c.projectDir)
    binding.setVariable('moduleDir', c.moduleDir)
    def answer
    try {
        answer = [text: new GroovyShell(binding).evaluate(c.code).toString()]
    } catch (Throwable e) {
        answer = [error: "${e.class.simpleName}: ${e.message}".toString()]
    }
    System.out.println(JsonOutput.toJson(answer))
    System.out.flush()
}
